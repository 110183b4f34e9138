//! `server.cfg` (the file given with `-config=`): typed model, renderer and importer.

use super::error::{ConfigError, FieldProblem, ImportWarning, Pos, WarningKind};
use super::escape;
use super::fields::{self, CfgField, Flag01, RawEntry, typed_fields};
use super::syntax::{self, Body, Item, Value};

/// Replaces secrets in [`ServerConfig::render_masked`].
pub const MASK: &str = "********";

/// Prefix of every field path in errors (`server.hostname`).
const PREFIX: &str = "server";

/// `timeStampFormat`: the prefix of each RPT line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeStampFormat {
    /// No timestamp (engine default).
    #[default]
    None,
    /// `H:MM:SS`.
    Short,
    /// Date and time.
    Full,
}

impl CfgField for TimeStampFormat {
    fn to_body(&self) -> Body {
        let s = match self {
            Self::None => "none",
            Self::Short => "short",
            Self::Full => "full",
        };
        Body::Value(Value::Str(s.to_owned()))
    }
    fn from_body(body: &Body) -> Result<Self, FieldProblem> {
        match body {
            Body::Value(Value::Str(s)) if s.eq_ignore_ascii_case("none") => Ok(Self::None),
            Body::Value(Value::Str(s)) if s.eq_ignore_ascii_case("short") => Ok(Self::Short),
            Body::Value(Value::Str(s)) if s.eq_ignore_ascii_case("full") => Ok(Self::Full),
            _ => Err(FieldProblem::WrongType("\"none\", \"short\" or \"full\"")),
        }
    }
}

/// A kick timeout (`votingTimeOut`, `roleTimeOut`, …): one number of seconds,
/// or the `{ready, notReady}` pair form the wiki example uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Timeout {
    /// `name = 60;`
    Seconds(i64),
    /// `name[] = {60, 90};`
    Pair(i64, i64),
}

impl CfgField for Timeout {
    fn to_body(&self) -> Body {
        match self {
            Self::Seconds(s) => Body::Value(Value::Int(*s)),
            Self::Pair(a, b) => Body::Array {
                values: vec![Value::Int(*a), Value::Int(*b)],
                append: false,
            },
        }
    }
    fn from_body(body: &Body) -> Result<Self, FieldProblem> {
        if let Body::Value(Value::Int(i)) = body {
            return Ok(Self::Seconds(*i));
        }
        match <Vec<i64>>::from_body(body) {
            Ok(v) if v.len() == 2 => Ok(Self::Pair(v[0], v[1])),
            _ => Err(FieldProblem::WrongType("seconds or a {a, b} pair")),
        }
    }
}

/// One `name = value;` line of a mission's `class Params`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MissionParam {
    /// Parameter class name from the mission's description.ext.
    pub name: String,
    /// Its value.
    pub value: ParamValue,
}

/// A mission parameter value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// Integer (the usual case).
    Int(i64),
    /// Float.
    Float(f64),
    /// String.
    Text(String),
}

impl ParamValue {
    fn to_value(&self) -> Value {
        match self {
            Self::Int(i) => Value::Int(*i),
            Self::Float(f) => Value::Float(*f),
            Self::Text(s) => Value::Str(s.clone()),
        }
    }
}

/// One entry of the mission rotation (`class Missions`).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Mission {
    /// Class name; `None` writes `Mission_<n>` (1-based position). Import
    /// always fills it with the name exactly as written, so `None` and
    /// `Some("Mission_<n>")` at position n are the same config; compare through
    /// [`ServerConfig::with_effective_class_names`].
    pub class_name: Option<String>,
    /// PBO name without `.pbo`, from `mpmissions/` (e.g. `co10_Escape.Altis`).
    pub template: String,
    /// `Recruit`, `Regular`, `Veteran` or `Custom`; omitted when unset.
    pub difficulty: Option<String>,
    /// `class Params` entries, in order.
    pub params: Vec<MissionParam>,
}

impl Mission {
    fn default_class_name(index: usize) -> String {
        format!("Mission_{}", index + 1)
    }

    /// The class name written for the mission at `index`.
    pub fn effective_class_name(&self, index: usize) -> String {
        self.class_name
            .clone()
            .unwrap_or_else(|| Self::default_class_name(index))
    }
}

/// `class AdvancedOptions` (2.02+).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct AdvancedOptions {
    /// `LogObjectNotFound` (default true).
    pub log_object_not_found: Option<bool>,
    /// `SkipDescriptionParsing` (default false).
    pub skip_description_parsing: Option<bool>,
    /// `ignoreMissionLoadErrors` (default false).
    pub ignore_mission_load_errors: Option<bool>,
    /// `queueSizeLogG` in bytes (default 1000000).
    pub queue_size_log_g: Option<i64>,
}

typed_fields!(AdvancedOptions {
    log_object_not_found: bool => "LogObjectNotFound",
    skip_description_parsing: bool => "SkipDescriptionParsing",
    ignore_mission_load_errors: bool => "ignoreMissionLoadErrors",
    queue_size_log_g: i64 => "queueSizeLogG" [Check::Int(0, i64::from(i32::MAX))],
});

/// The `server.cfg` model. Every optional field is omitted from the file when
/// `None`, so Arma's own default applies and we never write a value the admin
/// did not choose. Field paths in errors are `server.<field>`.
///
/// Secrets (`password`, `password_admin`, `server_command_password`) are
/// rendered by [`render`](Self::render) (the agent writes the real file) and
/// masked by [`render_masked`](Self::render_masked) for previews.
#[derive(Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// `hostname`: name in the server browser. Always written.
    pub hostname: String,
    /// `password`: join password (secret).
    pub password: Option<String>,
    /// `passwordAdmin`: `#login` password (secret).
    pub password_admin: Option<String>,
    /// `serverCommandPassword` (secret).
    pub server_command_password: Option<String>,
    /// `maxPlayers` (1..=1024).
    pub max_players: Option<i64>,
    /// `motd[]`: lines shown in rotation; `""` adds delay.
    pub motd: Option<Vec<String>>,
    /// `motdInterval` in seconds.
    pub motd_interval: Option<f64>,
    /// `admins[]`: SteamID64s allowed to `#login` without password.
    pub admins: Option<Vec<String>>,
    /// `headlessClients[]`: IP addresses.
    pub headless_clients: Option<Vec<String>>,
    /// `localClient[]`: IP addresses with unlimited bandwidth.
    pub local_client: Option<Vec<String>>,
    /// `filePatchingExceptions[]`: Steam UIDs.
    pub file_patching_exceptions: Option<Vec<String>>,
    /// `voteThreshold` (0..=1).
    pub vote_threshold: Option<f64>,
    /// `voteMissionPlayers`.
    pub vote_mission_players: Option<i64>,
    /// `allowedVoteCmds[]` (raw nested array; `{}` disables votes).
    pub allowed_vote_cmds: Option<Vec<Value>>,
    /// `allowedVotedAdminCmds[]` (raw nested array).
    pub allowed_voted_admin_cmds: Option<Vec<Value>>,
    /// `kickDuplicate` (0/1).
    pub kick_duplicate: Option<Flag01>,
    /// `verifySignatures` (0..=2).
    pub verify_signatures: Option<i64>,
    /// `allowedFilePatching` (0 none, 1 HC, 2 all).
    pub allowed_file_patching: Option<i64>,
    /// `BattlEye` (0/1).
    pub battleye: Option<Flag01>,
    /// `persistent` (0/1); needed with `-autoInit`.
    pub persistent: Option<Flag01>,
    /// `timeStampFormat`.
    pub time_stamp_format: Option<TimeStampFormat>,
    /// `logFile`.
    pub log_file: Option<String>,
    /// `disableVoN` (0/1).
    pub disable_von: Option<Flag01>,
    /// `vonCodec` (0 SPEEX, 1 OPUS).
    pub von_codec: Option<i64>,
    /// `vonCodecQuality` (0..=30).
    pub von_codec_quality: Option<i64>,
    /// `statisticsEnabled` (0/1).
    pub statistics_enabled: Option<Flag01>,
    /// `requiredBuild`.
    pub required_build: Option<i64>,
    /// `steamProtocolMaxDataSize` in bytes.
    pub steam_protocol_max_data_size: Option<i64>,
    /// `loopback`: LAN only.
    pub loopback: Option<bool>,
    /// `upnp`.
    pub upnp: Option<bool>,
    /// `forcedDifficulty`.
    pub forced_difficulty: Option<String>,
    /// `missionWhitelist[]`.
    pub mission_whitelist: Option<Vec<String>>,
    /// `disconnectTimeout` (5..=90 s).
    pub disconnect_timeout: Option<i64>,
    /// `maxDesync`.
    pub max_desync: Option<i64>,
    /// `maxPing` (ms).
    pub max_ping: Option<i64>,
    /// `maxPacketLoss` (%).
    pub max_packet_loss: Option<i64>,
    /// `kickClientsOnSlowNetwork[]`: {ping, loss, desync, disconnect}, 0 log / 1 kick.
    pub kick_clients_on_slow_network: Option<Vec<i64>>,
    /// `kickTimeout[]` (raw nested array).
    pub kick_timeout: Option<Vec<Value>>,
    /// `enablePlayerDiag` (0/1).
    pub enable_player_diag: Option<Flag01>,
    /// `callExtReportLimit` (ms).
    pub call_ext_report_limit: Option<i64>,
    /// `lobbyIdleTimeout` (s).
    pub lobby_idle_timeout: Option<i64>,
    /// `roleTimeOut`.
    pub role_time_out: Option<Timeout>,
    /// `votingTimeOut`.
    pub voting_time_out: Option<Timeout>,
    /// `briefingTimeOut`.
    pub briefing_time_out: Option<Timeout>,
    /// `debriefingTimeOut`.
    pub debriefing_time_out: Option<Timeout>,
    /// `armaUnitsTimeout` (s).
    pub arma_units_timeout: Option<i64>,
    /// `autoSelectMission`.
    pub auto_select_mission: Option<bool>,
    /// `randomMissionOrder`.
    pub random_mission_order: Option<bool>,
    /// `missionsToShutdown`.
    pub missions_to_shutdown: Option<i64>,
    /// `missionsToHardRestart`.
    pub missions_to_hard_restart: Option<i64>,
    /// `skipLobby`.
    pub skip_lobby: Option<bool>,
    /// `drawingInMap`.
    pub drawing_in_map: Option<bool>,
    /// `allowProfileGlasses`.
    pub allow_profile_glasses: Option<bool>,
    /// `zeusCompositionScriptLevel` (0..=2).
    pub zeus_composition_script_level: Option<i64>,
    /// `allowedLoadFileExtensions[]` (missing = all, empty = none).
    pub allowed_load_file_extensions: Option<Vec<String>>,
    /// `allowedPreprocessFileExtensions[]`.
    pub allowed_preprocess_file_extensions: Option<Vec<String>>,
    /// `allowedHTMLLoadExtensions[]`.
    pub allowed_html_load_extensions: Option<Vec<String>>,
    /// `allowedHTMLLoadURIs[]`.
    pub allowed_html_load_uris: Option<Vec<String>>,
    /// `onUserConnected` (SQF).
    pub on_user_connected: Option<String>,
    /// `onUserDisconnected` (SQF).
    pub on_user_disconnected: Option<String>,
    /// `doubleIdDetected` (SQF).
    pub double_id_detected: Option<String>,
    /// `onUnsignedData` (SQF).
    pub on_unsigned_data: Option<String>,
    /// `onHackedData` (SQF).
    pub on_hacked_data: Option<String>,
    /// `onDifferentData` (SQF).
    pub on_different_data: Option<String>,
    /// `forceRotorLibSimulation` (0 player choice, 1 AFM, 2 SFM).
    pub force_rotor_lib_simulation: Option<i64>,
    /// `class AdvancedOptions`; omitted when `None`.
    pub advanced_options: Option<AdvancedOptions>,
    /// `class Missions` rotation; omitted when empty (no rotation).
    pub missions: Vec<Mission>,
    /// Parameters the model does not type (see [`RawEntry`]).
    pub extra: Vec<RawEntry>,
}

/// Secrets never appear in debug output.
impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let masked = self.masked();
        f.debug_struct("ServerConfig")
            .field("hostname", &masked.hostname)
            .field("password", &masked.password)
            .field("password_admin", &masked.password_admin)
            .field("server_command_password", &masked.server_command_password)
            .field("max_players", &masked.max_players)
            .field("missions", &masked.missions)
            .field("extra", &masked.extra)
            .finish_non_exhaustive()
    }
}

typed_fields!(ServerConfig {
    password: String => "password",
    password_admin: String => "passwordAdmin",
    server_command_password: String => "serverCommandPassword",
    max_players: i64 => "maxPlayers" [Check::Int(1, 1024)],
    motd: Vec<String> => "motd",
    motd_interval: f64 => "motdInterval" [Check::Float(0.0, 86_400.0)],
    admins: Vec<String> => "admins" [Check::SteamId64],
    headless_clients: Vec<String> => "headlessClients" [Check::Ip],
    local_client: Vec<String> => "localClient" [Check::Ip],
    file_patching_exceptions: Vec<String> => "filePatchingExceptions" [Check::Digits],
    vote_threshold: f64 => "voteThreshold" [Check::Float(0.0, 1.0)],
    vote_mission_players: i64 => "voteMissionPlayers" [Check::Int(0, 1024)],
    allowed_vote_cmds: Vec<Value> => "allowedVoteCmds",
    allowed_voted_admin_cmds: Vec<Value> => "allowedVotedAdminCmds",
    kick_duplicate: Flag01 => "kickDuplicate",
    verify_signatures: i64 => "verifySignatures" [Check::Int(0, 2)],
    allowed_file_patching: i64 => "allowedFilePatching" [Check::Int(0, 2)],
    battleye: Flag01 => "BattlEye",
    persistent: Flag01 => "persistent",
    time_stamp_format: TimeStampFormat => "timeStampFormat",
    log_file: String => "logFile",
    disable_von: Flag01 => "disableVoN",
    von_codec: i64 => "vonCodec" [Check::Int(0, 1)],
    von_codec_quality: i64 => "vonCodecQuality" [Check::Int(0, 30)],
    statistics_enabled: Flag01 => "statisticsEnabled",
    required_build: i64 => "requiredBuild" [Check::Int(0, i64::from(i32::MAX))],
    steam_protocol_max_data_size: i64 => "steamProtocolMaxDataSize" [Check::Int(1, 65_535)],
    loopback: bool => "loopback",
    upnp: bool => "upnp",
    forced_difficulty: String => "forcedDifficulty",
    mission_whitelist: Vec<String> => "missionWhitelist",
    disconnect_timeout: i64 => "disconnectTimeout" [Check::Int(5, 90)],
    max_desync: i64 => "maxDesync" [Check::Int(0, 1_000_000)],
    max_ping: i64 => "maxPing" [Check::Int(0, 1_000_000)],
    max_packet_loss: i64 => "maxPacketLoss" [Check::Int(0, 100)],
    kick_clients_on_slow_network: Vec<i64> => "kickClientsOnSlowNetwork" [Check::Len(4), Check::Int(0, 1)],
    kick_timeout: Vec<Value> => "kickTimeout",
    enable_player_diag: Flag01 => "enablePlayerDiag",
    call_ext_report_limit: i64 => "callExtReportLimit" [Check::Int(0, i64::from(i32::MAX))],
    lobby_idle_timeout: i64 => "lobbyIdleTimeout" [Check::Int(0, 86_400)],
    role_time_out: Timeout => "roleTimeOut" [Check::Int(-1, 86_400)],
    voting_time_out: Timeout => "votingTimeOut" [Check::Int(-1, 86_400)],
    briefing_time_out: Timeout => "briefingTimeOut" [Check::Int(-1, 86_400)],
    debriefing_time_out: Timeout => "debriefingTimeOut" [Check::Int(-1, 86_400)],
    arma_units_timeout: i64 => "armaUnitsTimeout" [Check::Int(0, 86_400)],
    auto_select_mission: bool => "autoSelectMission",
    random_mission_order: bool => "randomMissionOrder",
    missions_to_shutdown: i64 => "missionsToShutdown" [Check::Int(0, i64::from(i32::MAX))],
    missions_to_hard_restart: i64 => "missionsToHardRestart" [Check::Int(0, i64::from(i32::MAX))],
    skip_lobby: bool => "skipLobby",
    drawing_in_map: bool => "drawingInMap",
    allow_profile_glasses: bool => "allowProfileGlasses",
    zeus_composition_script_level: i64 => "zeusCompositionScriptLevel" [Check::Int(0, 2)],
    allowed_load_file_extensions: Vec<String> => "allowedLoadFileExtensions",
    allowed_preprocess_file_extensions: Vec<String> => "allowedPreprocessFileExtensions",
    allowed_html_load_extensions: Vec<String> => "allowedHTMLLoadExtensions",
    allowed_html_load_uris: Vec<String> => "allowedHTMLLoadURIs",
    on_user_connected: String => "onUserConnected",
    on_user_disconnected: String => "onUserDisconnected",
    double_id_detected: String => "doubleIdDetected",
    on_unsigned_data: String => "onUnsignedData",
    on_hacked_data: String => "onHackedData",
    on_different_data: String => "onDifferentData",
    force_rotor_lib_simulation: i64 => "forceRotorLibSimulation" [Check::Int(0, 2)],
});

const HOSTNAME: &str = "hostname";
const MISSIONS: &str = "Missions";
const ADVANCED: &str = "AdvancedOptions";
const HEADER: &str = "// Generated by Languard. Manual edits are overwritten.\n";

impl ServerConfig {
    /// The same config with every mission's `class_name` set to the name it is
    /// written with ([`Mission::effective_class_name`]). This is the form
    /// [`ServerConfig::parse`] returns, so for any model `render` accepts,
    /// `parse(render(m)) == m.with_effective_class_names()`.
    pub fn with_effective_class_names(mut self) -> Self {
        for (i, m) in self.missions.iter_mut().enumerate() {
            m.class_name = Some(m.effective_class_name(i));
        }
        self
    }

    /// Every name an `extra` entry may not use (typed keys and classes).
    pub fn reserved_names() -> Vec<&'static str> {
        let mut v = vec![HOSTNAME, MISSIONS, ADVANCED];
        v.extend_from_slice(Self::TYPED_KEYS);
        v
    }

    /// Checks every field; the error names the first bad field
    /// (`server.motd[2]`, `server.missions[0].template`, …).
    pub fn validate(&self) -> Result<(), ConfigError> {
        escape::check_text(&format!("{PREFIX}.hostname"), &self.hostname)?;
        self.validate_typed(PREFIX)?;
        if let Some(adv) = &self.advanced_options {
            adv.validate_typed(&format!("{PREFIX}.advanced_options"))?;
        }
        let mut names: Vec<String> = Vec::new();
        for (i, m) in self.missions.iter().enumerate() {
            let p = format!("{PREFIX}.missions[{i}]");
            let class_name = m.effective_class_name(i);
            escape::check_identifier(&format!("{p}.class_name"), &class_name)?;
            if names.iter().any(|n| n.eq_ignore_ascii_case(&class_name)) {
                return Err(ConfigError::field(
                    format!("{p}.class_name"),
                    FieldProblem::Duplicate(class_name),
                ));
            }
            names.push(class_name);
            escape::check_text(&format!("{p}.template"), &m.template)?;
            if m.template.trim().is_empty() {
                return Err(ConfigError::field(
                    format!("{p}.template"),
                    FieldProblem::Invalid("must not be empty".into()),
                ));
            }
            if let Some(d) = &m.difficulty {
                escape::check_text(&format!("{p}.difficulty"), d)?;
            }
            let mut pnames: Vec<&str> = Vec::new();
            for (j, param) in m.params.iter().enumerate() {
                let pp = format!("{p}.params[{j}]");
                escape::check_identifier(&format!("{pp}.name"), &param.name)?;
                if matches!(
                    param.name.to_ascii_lowercase().as_str(),
                    "class" | "delete" | "import"
                ) {
                    return Err(ConfigError::field(
                        format!("{pp}.name"),
                        FieldProblem::Reserved(param.name.clone()),
                    ));
                }
                if pnames.iter().any(|n| n.eq_ignore_ascii_case(&param.name)) {
                    return Err(ConfigError::field(
                        format!("{pp}.name"),
                        FieldProblem::Duplicate(param.name.clone()),
                    ));
                }
                pnames.push(&param.name);
                syntax::check_value(&param.value.to_value(), &format!("{pp}.value"))?;
            }
        }
        fields::validate_extras(&self.extra, PREFIX, &Self::reserved_names())
    }

    /// The generic items this model renders to (after validation).
    pub fn to_items(&self) -> Result<Vec<Item>, ConfigError> {
        self.validate()?;
        let mut items = vec![Item::value(HOSTNAME, Value::Str(self.hostname.clone()))];
        self.emit_typed(&mut items);
        items.extend(self.extra.iter().map(RawEntry::to_item));
        if let Some(adv) = &self.advanced_options {
            let mut inner = Vec::new();
            adv.emit_typed(&mut inner);
            items.push(Item::class(ADVANCED, inner));
        }
        if !self.missions.is_empty() {
            let list = self
                .missions
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let mut inner = vec![Item::value("template", Value::Str(m.template.clone()))];
                    if let Some(d) = &m.difficulty {
                        inner.push(Item::value("difficulty", Value::Str(d.clone())));
                    }
                    if !m.params.is_empty() {
                        inner.push(Item::class(
                            "Params",
                            m.params
                                .iter()
                                .map(|p| Item::value(&p.name, p.value.to_value()))
                                .collect(),
                        ));
                    }
                    Item::class(&m.effective_class_name(i), inner)
                })
                .collect();
            items.push(Item::class(MISSIONS, list));
        }
        Ok(items)
    }

    /// Renders the real file, secrets included (for the agent to write).
    pub fn render(&self) -> Result<String, ConfigError> {
        let body = syntax::render(&self.to_items()?, PREFIX)?;
        Ok(format!("{HEADER}{body}"))
    }

    /// A copy with the passwords that are set replaced by [`MASK`].
    pub fn masked(&self) -> Self {
        let mask = |s: &Option<String>| s.as_ref().map(|_| MASK.to_owned());
        Self {
            password: mask(&self.password),
            password_admin: mask(&self.password_admin),
            server_command_password: mask(&self.server_command_password),
            ..self.clone()
        }
    }

    /// Renders for previews: like [`render`](Self::render) with `password`,
    /// `passwordAdmin` and `serverCommandPassword` shown as [`MASK`].
    pub fn render_masked(&self) -> Result<String, ConfigError> {
        self.masked().render()
    }

    /// Imports an existing server.cfg. Keys match case-insensitively; unknown
    /// parameters are kept in `extra` and reported; unknown classes, forward
    /// declarations and unknown keys inside known classes are dropped and
    /// reported. A known key with an unusable value is an error with its
    /// line/column. Preprocessor directives are a syntax error (see
    /// [`syntax`](super::syntax)).
    pub fn parse(text: &str) -> Result<(Self, Vec<ImportWarning>), ConfigError> {
        let items = syntax::parse(text)?;
        let mut cfg = Self::default();
        let mut warnings = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for item in &items {
            let lower = item.name.to_ascii_lowercase();
            if seen.contains(&lower) {
                warnings.push(ImportWarning {
                    pos: item.pos,
                    kind: WarningKind::Duplicate(item.name.clone()),
                });
            } else {
                seen.push(lower);
            }
            if item.name.eq_ignore_ascii_case(HOSTNAME) {
                cfg.hostname = String::from_body(&item.body).map_err(|p| {
                    ConfigError::field(format!("{PREFIX}.hostname"), p).at(item.pos)
                })?;
                escape::check_text(&format!("{PREFIX}.hostname"), &cfg.hostname)
                    .map_err(|e| e.at(item.pos))?;
                continue;
            }
            if let Body::Class { items: body, .. } = &item.body {
                match body {
                    Some(body) if item.name.eq_ignore_ascii_case(MISSIONS) => {
                        cfg.missions = parse_missions(body, &mut warnings)?;
                    }
                    Some(body) if item.name.eq_ignore_ascii_case(ADVANCED) => {
                        let mut adv = AdvancedOptions::default();
                        let prefix = format!("{PREFIX}.advanced_options");
                        for inner in body {
                            match adv.assign_typed(inner, &prefix) {
                                Some(r) => r?,
                                None => warnings.push(dropped(inner, ADVANCED)),
                            }
                        }
                        cfg.advanced_options = Some(adv);
                    }
                    _ => warnings.push(ImportWarning {
                        pos: item.pos,
                        kind: WarningKind::Dropped(format!("class {}", item.name)),
                    }),
                }
                continue;
            }
            match cfg.assign_typed(item, PREFIX) {
                Some(r) => r?,
                None => match RawEntry::from_item(item) {
                    Some(entry) => {
                        check_extra_value(&entry, item.pos)?;
                        fields::upsert_extra(&mut cfg.extra, entry);
                        warnings.push(ImportWarning {
                            pos: item.pos,
                            kind: WarningKind::KeptAsExtra(item.name.clone()),
                        });
                    }
                    None => warnings.push(ImportWarning {
                        pos: item.pos,
                        kind: WarningKind::Dropped(item.name.clone()),
                    }),
                },
            }
        }
        cfg.validate()?;
        Ok((cfg, warnings))
    }
}

fn check_extra_value(entry: &RawEntry, pos: Pos) -> Result<(), ConfigError> {
    syntax::check_value(&entry.value, &format!("{PREFIX}.extra.{}", entry.name))
        .map_err(|e| e.at(pos))
}

fn dropped(item: &Item, within: &str) -> ImportWarning {
    ImportWarning {
        pos: item.pos,
        kind: WarningKind::Dropped(format!("{within}.{}", item.name)),
    }
}

fn parse_missions(
    body: &[Item],
    warnings: &mut Vec<ImportWarning>,
) -> Result<Vec<Mission>, ConfigError> {
    let mut out = Vec::new();
    for item in body {
        let Body::Class {
            items: Some(inner), ..
        } = &item.body
        else {
            warnings.push(dropped(item, MISSIONS));
            continue;
        };
        let index = out.len();
        let p = format!("{PREFIX}.missions[{index}]");
        let mut m = Mission {
            // Kept exactly: render → parse is the identity once class names
            // are filled in (see `ServerConfig::with_effective_class_names`).
            class_name: Some(item.name.clone()),
            ..Mission::default()
        };
        let mut has_template = false;
        for e in inner {
            if e.name.eq_ignore_ascii_case("template") {
                m.template = String::from_body(&e.body)
                    .map_err(|pr| ConfigError::field(format!("{p}.template"), pr).at(e.pos))?;
                has_template = true;
            } else if e.name.eq_ignore_ascii_case("difficulty") {
                m.difficulty =
                    Some(String::from_body(&e.body).map_err(|pr| {
                        ConfigError::field(format!("{p}.difficulty"), pr).at(e.pos)
                    })?);
            } else if let (
                true,
                Body::Class {
                    items: Some(params),
                    ..
                },
            ) = (e.name.eq_ignore_ascii_case("Params"), &e.body)
            {
                for param in params {
                    let value = match &param.body {
                        Body::Value(Value::Int(i)) => ParamValue::Int(*i),
                        Body::Value(Value::Bool(b)) => ParamValue::Int(i64::from(*b)),
                        Body::Value(Value::Float(f)) => ParamValue::Float(*f),
                        Body::Value(Value::Str(s)) => ParamValue::Text(s.clone()),
                        _ => {
                            warnings
                                .push(dropped(param, &format!("{MISSIONS}.{}.Params", item.name)));
                            continue;
                        }
                    };
                    m.params.push(MissionParam {
                        name: param.name.clone(),
                        value,
                    });
                }
            } else {
                warnings.push(dropped(e, &format!("{MISSIONS}.{}", item.name)));
            }
        }
        if !has_template {
            return Err(ConfigError::field(
                format!("{p}.template"),
                FieldProblem::Invalid("missing".into()),
            )
            .at(item.pos));
        }
        out.push(m);
    }
    Ok(out)
}
