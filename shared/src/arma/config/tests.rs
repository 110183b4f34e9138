//! Tests across the config modules: realistic imports, round trips, injection
//! and escaping properties.

use std::path::Path;

use proptest::prelude::*;

use super::battleye::{self, config_file_name};
use super::error::{ConfigError, FieldProblem, WarningKind};
use super::profile::profile_path;
use super::syntax::{self, Body, Item};
use super::*;

/// LinuxGSM/Game-Server-Configs style server.cfg with the wiki's extras.
const LINUXGSM_SERVER_CFG: &str = r#"
// ArmA 3 Server Config File
//
// GLOBAL SETTINGS
hostname = "LinuxGSM Server";		// The name of the server that shall be displayed in the public server list
password = "";					// Password for joining, eg connecting to the server
passwordAdmin = "ADMINPASSWORD";		// Password to become server admin. When you're in Arma MP and connected to the server, type '#login xyz'
serverCommandPassword = "";			// Password required by alternate syntax of [[serverCommand]] server-side scripting.
logFile = "arma3server.log";			// Tells ArmA-server where the logfile should go and what it should be called

// WELCOME MESSAGE ("message of the day")
motd[] = {
    "", "",
    "Two empty lines above for increasing interval",
    "Welcome to our server",
    "", "",
    "We are looking for fun - Join us Now !",
    "http://www.example.com",
    "One more empty line below for increasing interval",
    ""
};
motdInterval = 5;

// JOINING RULES
maxPlayers = 64;
kickDuplicate = 1;
verifySignatures = 2;
equalModRequired = 0;
allowedFilePatching = 0;
filePatchingExceptions[] = {"123456789","987654321"};
requiredSecureId = 2;
admins[] = {"76561198000000001"};
headlessClients[] = {"127.0.0.1"};
localClient[] = {"127.0.0.1", "::1"};

// VOTING
voteMissionPlayers = 1;
voteThreshold = 0.33;
allowedVoteCmds[] = {{"kick", false, false, 0.75}, {"mission", true}};

// INGAME SETTINGS
disableVoN = 0;
vonCodec = 1;
vonCodecQuality = 30;
persistent = 1;
timeStampFormat = "short";
BattlEye = 1;
allowedLoadFileExtensions[] = {"hpp","sqs","sqf","fsm","cpp","paa","txt","xml","inc","ext","sqm","ods","fxy","lip","csv","kb","bik","bikb","html","htm","biedi"};
allowedHTMLLoadExtensions[] = {"htm","html","xml","txt"};

// TIMEOUTS
disconnectTimeout = 5;
maxDesync = 150;
maxPing= 200;
maxPacketLoss= 50;
kickClientsOnSlowNetwork[] = { 0, 0, 0, 0 };
kickTimeout[] = { {0, -1}, {1, 180}, {2, 180}, {3, 180} };
votingTimeOut[] = {60, 90};
roleTimeOut = 90;
lobbyIdleTimeout = 300;

// SCRIPTING ISSUES
onUserConnected = "";
onUserDisconnected = "";
doubleIdDetected = "";
onUnsignedData = "kick (_this select 0)";
onHackedData = "kick (_this select 0)";
onDifferentData = "";

/* MISSIONS CYCLE */
randomMissionOrder = true;
autoSelectMission = 1;
STATISTICSENABLED = 1;

class AdvancedOptions
{
    LogObjectNotFound = false;
    queueSizeLogG = 1000000;
};

class Missions
{
    class Mission_1
    {
        template = "MP_Marksmen_01.Altis";
        difficulty = "veteran";
        class Params {};
    };
    class Escape
    {
        template = "co10_Escape.Malden";
        difficulty = "Custom";
        class Params { Daytime = 12; Weather = 0.5; Side = "west"; };
    };
};

missionWhitelist[] = {};
"#;

#[test]
fn imports_linuxgsm_server_cfg() {
    let (cfg, warnings) = ServerConfig::parse(LINUXGSM_SERVER_CFG).unwrap();
    assert_eq!(cfg.hostname, "LinuxGSM Server");
    assert_eq!(cfg.password.as_deref(), Some(""));
    assert_eq!(cfg.password_admin.as_deref(), Some("ADMINPASSWORD"));
    assert_eq!(cfg.max_players, Some(64));
    assert_eq!(cfg.motd.as_ref().map(Vec::len), Some(10));
    assert_eq!(cfg.motd_interval, Some(5.0));
    assert_eq!(cfg.vote_threshold, Some(0.33));
    assert_eq!(cfg.battleye, Some(Flag01(true)));
    assert_eq!(
        cfg.statistics_enabled,
        Some(Flag01(true)),
        "keys are case-insensitive"
    );
    assert_eq!(cfg.auto_select_mission, Some(true), "1 accepted for a bool");
    assert_eq!(cfg.random_mission_order, Some(true));
    assert_eq!(cfg.time_stamp_format, Some(TimeStampFormat::Short));
    assert_eq!(cfg.voting_time_out, Some(Timeout::Pair(60, 90)));
    assert_eq!(cfg.role_time_out, Some(Timeout::Seconds(90)));
    assert_eq!(cfg.kick_clients_on_slow_network, Some(vec![0, 0, 0, 0]));
    assert_eq!(cfg.kick_timeout.as_ref().map(Vec::len), Some(4));
    assert_eq!(cfg.mission_whitelist, Some(vec![]));
    assert_eq!(
        cfg.local_client,
        Some(vec!["127.0.0.1".to_owned(), "::1".to_owned()])
    );
    let adv = cfg.advanced_options.clone().unwrap();
    assert_eq!(adv.log_object_not_found, Some(false));
    assert_eq!(adv.queue_size_log_g, Some(1_000_000));
    assert_eq!(cfg.missions.len(), 2);
    assert_eq!(
        cfg.missions[0].class_name.as_deref(),
        Some("Mission_1"),
        "class name kept exactly"
    );
    assert_eq!(cfg.missions[0].template, "MP_Marksmen_01.Altis");
    assert_eq!(cfg.missions[1].class_name.as_deref(), Some("Escape"));
    assert_eq!(
        cfg.missions[1].params,
        vec![
            MissionParam {
                name: "Daytime".into(),
                value: ParamValue::Int(12)
            },
            MissionParam {
                name: "Weather".into(),
                value: ParamValue::Float(0.5)
            },
            MissionParam {
                name: "Side".into(),
                value: ParamValue::Text("west".into())
            },
        ]
    );
    // Unknown keys survive in `extra`, with warnings.
    let extra: Vec<&str> = cfg.extra.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(extra, vec!["equalModRequired", "requiredSecureId"]);
    let kept = warnings
        .iter()
        .filter(|w| matches!(w.kind, WarningKind::KeptAsExtra(_)))
        .count();
    assert_eq!(kept, 2);

    // Round trip: render and import again gives the same model.
    let text = cfg.render().unwrap();
    let (again, _) = ServerConfig::parse(&text).unwrap();
    assert_eq!(again, cfg);
    assert!(text.contains("votingTimeOut[] = {60, 90};"));
    assert!(text.contains("BattlEye = 1;"));
    assert!(text.contains("randomMissionOrder = true;"));
    assert!(text.contains("class Mission_1\n"));
}

#[test]
fn import_errors_carry_line_and_field() {
    let err = ServerConfig::parse("hostname = \"x\";\nmaxPlayers = \"many\";\n").unwrap_err();
    match err {
        ConfigError::Import {
            pos,
            field,
            problem,
        } => {
            assert_eq!((pos.line, pos.column), (2, 1));
            assert_eq!(field, "server.max_players");
            assert_eq!(problem, FieldProblem::WrongType("an integer"));
        }
        other => panic!("{other:?}"),
    }
    let err = ServerConfig::parse("\n\n  maxPlayers = 5000;").unwrap_err();
    assert!(
        matches!(&err, ConfigError::Import { pos, .. } if pos.line == 3 && pos.column == 3),
        "{err:?}"
    );
    let err = ServerConfig::parse("#include \"other.cfg\"\nhostname = \"x\";").unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }));
    let err = ServerConfig::parse("class Missions { class M { difficulty = \"Regular\"; }; };")
        .unwrap_err();
    assert_eq!(err.field_path(), Some("server.missions[0].template"));
}

#[test]
fn field_errors_name_the_path() {
    let mut cfg = ServerConfig {
        hostname: "ok".into(),
        motd: Some(vec!["a".into(), "b".into(), "c\nd".into()]),
        ..Default::default()
    };
    assert_eq!(
        cfg.render().unwrap_err().field_path(),
        Some("server.motd[2]")
    );
    cfg.motd = None;
    cfg.hostname = "evil\r\nmaxPlayers = 1".into();
    assert_eq!(
        cfg.render().unwrap_err().field_path(),
        Some("server.hostname")
    );
    cfg.hostname = "ok".into();
    cfg.missions = vec![Mission {
        template: "a\tb".into(),
        ..Default::default()
    }];
    assert_eq!(
        cfg.render().unwrap_err().field_path(),
        Some("server.missions[0].template")
    );
    cfg.missions = vec![Mission {
        template: "a".into(),
        params: vec![MissionParam {
            name: "bad name".into(),
            value: ParamValue::Int(1),
        }],
        ..Default::default()
    }];
    assert_eq!(
        cfg.render().unwrap_err().field_path(),
        Some("server.missions[0].params[0].name")
    );
    cfg.missions = vec![Mission {
        class_name: Some("X {".into()),
        template: "a".into(),
        ..Default::default()
    }];
    assert_eq!(
        cfg.render().unwrap_err().field_path(),
        Some("server.missions[0].class_name")
    );
    cfg.missions = vec![
        Mission {
            class_name: Some("Mission_2".into()),
            template: "a".into(),
            ..Default::default()
        },
        Mission {
            template: "b".into(),
            ..Default::default()
        },
    ];
    assert!(matches!(
        cfg.render().unwrap_err(),
        ConfigError::Field {
            problem: FieldProblem::Duplicate(_),
            ..
        }
    ));
    cfg.missions.clear();
    cfg.admins = Some(vec!["76561198000000001".into(), "7656119800000000".into()]);
    assert_eq!(
        cfg.render().unwrap_err().field_path(),
        Some("server.admins[1]")
    );
    cfg.admins = None;
    cfg.headless_clients = Some(vec!["10.0.0.300".into()]);
    assert_eq!(
        cfg.render().unwrap_err().field_path(),
        Some("server.headless_clients[0]")
    );
    cfg.headless_clients = None;
    cfg.max_players = Some(0);
    assert_eq!(
        cfg.render().unwrap_err().field_path(),
        Some("server.max_players")
    );
    cfg.max_players = None;
    cfg.kick_clients_on_slow_network = Some(vec![0, 1, 0]);
    assert_eq!(
        cfg.render().unwrap_err().field_path(),
        Some("server.kick_clients_on_slow_network")
    );
    cfg.kick_clients_on_slow_network = Some(vec![0, 1, 2, 0]);
    assert_eq!(
        cfg.render().unwrap_err().field_path(),
        Some("server.kick_clients_on_slow_network[2]")
    );
    cfg.kick_clients_on_slow_network = None;
    cfg.motd_interval = Some(f64::NAN);
    assert!(cfg.render().is_err());
    cfg.motd_interval = None;
    cfg.advanced_options = Some(AdvancedOptions {
        queue_size_log_g: Some(-1),
        ..Default::default()
    });
    assert_eq!(
        cfg.render().unwrap_err().field_path(),
        Some("server.advanced_options.queue_size_log_g")
    );
}

#[test]
fn extra_entries_are_validated() {
    let base = ServerConfig {
        hostname: "h".into(),
        ..Default::default()
    };
    let with = |name: &str, value: Value| ServerConfig {
        extra: vec![RawEntry {
            name: name.into(),
            value,
        }],
        ..base.clone()
    };
    assert!(with("equalModRequired", Value::Int(0)).render().is_ok());
    for bad in [
        "MAXPLAYERS",
        "missions",
        "advancedoptions",
        "Hostname",
        "class",
    ] {
        let err = with(bad, Value::Int(1)).render().unwrap_err();
        assert!(
            matches!(
                &err,
                ConfigError::Field {
                    problem: FieldProblem::Reserved(_),
                    ..
                }
            ),
            "{bad}: {err:?}"
        );
    }
    let err = with("x = 1; y", Value::Int(1)).render().unwrap_err();
    assert_eq!(err.field_path(), Some("server.extra[0].name"));
    let err = with(
        "note",
        Value::Array(vec![Value::Str("ok".into()), Value::Str("\n".into())]),
    )
    .render()
    .unwrap_err();
    assert_eq!(err.field_path(), Some("server.extra[0].value[1]"));
    let dup = ServerConfig {
        extra: vec![
            RawEntry {
                name: "a".into(),
                value: Value::Int(1),
            },
            RawEntry {
                name: "A".into(),
                value: Value::Int(2),
            },
        ],
        ..base
    };
    assert!(matches!(
        dup.render().unwrap_err(),
        ConfigError::Field {
            problem: FieldProblem::Duplicate(_),
            ..
        }
    ));
}

#[test]
fn masked_render_hides_only_set_secrets() {
    let cfg = ServerConfig {
        hostname: "h".into(),
        password: Some("join\"me".into()),
        password_admin: Some("adminpw".into()),
        ..Default::default()
    };
    let real = cfg.render().unwrap();
    assert!(real.contains("password = \"join\"\"me\";"));
    assert!(real.contains("passwordAdmin = \"adminpw\";"));
    let masked = cfg.render_masked().unwrap();
    assert!(!masked.contains("join") && !masked.contains("adminpw"));
    assert!(masked.contains("password = \"********\";"));
    assert!(!masked.contains("serverCommandPassword"));
    assert!(!format!("{cfg:?}").contains("adminpw"));
}

#[test]
fn minimal_config_writes_only_what_is_set() {
    let cfg = ServerConfig {
        hostname: "Only name".into(),
        ..Default::default()
    };
    let text = cfg.render().unwrap();
    let items = syntax::parse(&text).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].name, "hostname");
}

#[test]
fn basic_cfg_defaults_and_import() {
    let text = BasicConfig::default().render().unwrap();
    assert!(text.contains("MaxMsgSend = 128;"));
    assert!(text.contains("MinErrorToSend = 0.001;"));
    assert!(text.contains("class sockets"));
    assert!(text.contains("maxPacketSize = 1400;"));
    let (back, warnings) = BasicConfig::parse(&text).unwrap();
    assert_eq!(back, BasicConfig::default());
    assert!(warnings.is_empty());

    let faster = "MaxMsgSend = 256;\nMaxSizeGuaranteed = 256;\nMaxSizeNonguaranteed = 128;\nMinBandwidth = 5120000;\n\
                  MaxBandwidth = 2147483647;\nMinErrorToSend = 0.001;\nMinErrorToSendNear = 0.01;\nMaxCustomFileSize = 1600000;\n\
                  class sockets { maxPacketSize = 1400; };\nadapter = -1;\n3D_Performance = 1;\nterrainGrid = 25;\nviewDistance = 2000;\n";
    let (cfg, warnings) = BasicConfig::parse(faster).unwrap();
    assert_eq!(cfg.max_bandwidth, Some(2_147_483_647));
    assert_eq!(cfg.terrain_grid, Some(25.0));
    assert_eq!(cfg.view_distance, Some(2000));
    assert_eq!(
        cfg.extra.len(),
        1,
        "adapter kept; 3D_Performance is not an identifier"
    );
    assert_eq!(warnings.len(), 2);
    let (again, _) = BasicConfig::parse(&cfg.render().unwrap()).unwrap();
    assert_eq!(again, cfg);
    let err = BasicConfig::parse("class sockets { maxPacketSize = 10; };").unwrap_err();
    assert_eq!(err.field_path(), Some("basic.max_packet_size"));
}

#[test]
fn profile_render_parse_and_ranges() {
    let mut p = Arma3Profile::default();
    p.custom_difficulty.options.third_person_view = Some(0);
    p.custom_difficulty.options.tactical_ping = Some(3);
    p.custom_difficulty.options.group_indicators = Some(2);
    p.custom_difficulty.ai_level_preset = Some(3);
    p.custom_ai_level.skill_ai = Some(0.75);
    p.custom_ai_level.precision_ai = Some(0.2);
    let text = p.render().unwrap();
    assert!(text.contains("class DifficultyPresets"));
    assert!(text.contains("thirdPersonView = 0;"));
    assert!(text.contains("skillAI = 0.75;"));
    let (back, warnings) = Arma3Profile::parse(&text).unwrap();
    assert_eq!(back, p);
    assert!(warnings.is_empty());

    p.custom_difficulty.options.tactical_ping = Some(4);
    assert_eq!(
        p.render().unwrap_err().field_path(),
        Some("profile.custom_difficulty.options.tactical_ping")
    );
    p.custom_difficulty.options.tactical_ping = None;
    p.custom_ai_level.skill_ai = Some(1.5);
    assert_eq!(
        p.render().unwrap_err().field_path(),
        Some("profile.custom_ai_level.skill_ai")
    );

    let faster = "version=2;\nclass DifficultyPresets {\n class CustomDifficulty {\n  class Options {\n   reducedDamage=0;\n   groupIndicators=2;\n   unknownOpt=1;\n  };\n  aiLevelPreset=3;\n };\n class CustomAILevel { skillAI=0.5; precisionAI=0.5; };\n};\n";
    let (p, warnings) = Arma3Profile::parse(faster).unwrap();
    assert_eq!(p.custom_difficulty.options.group_indicators, Some(2));
    assert_eq!(p.custom_ai_level.precision_ai, Some(0.5));
    assert_eq!(warnings.len(), 1);
}

#[test]
fn profile_paths() {
    let root = Path::new("/srv/a3/profiles");
    assert_eq!(
        profile_path(root, "server", HostOs::Linux).unwrap(),
        Path::new("/srv/a3/profiles/home/server/server.Arma3Profile")
    );
    assert_eq!(
        profile_path(root, "server", HostOs::Windows).unwrap(),
        Path::new("/srv/a3/profiles/Users/server/server.Arma3Profile")
    );
    for bad in ["", "..", "a/b", "a\\b", "x\n"] {
        assert!(profile_path(root, bad, HostOs::Linux).is_err(), "{bad:?}");
    }
}

#[test]
fn battleye_render_parse_and_names() {
    let cfg = BattlEyeConfig {
        rcon_password: "Secret123".into(),
        rcon_port: 2310,
        rcon_ip: Some("127.0.0.1".parse().unwrap()),
        max_ping: Some(250),
        restrict_rcon: Some(false),
    };
    let text = cfg.render().unwrap();
    assert_eq!(
        text,
        "RConPassword Secret123\nRConPort 2310\nRConIP 127.0.0.1\nMaxPing 250\nRestrictRCon 0\n"
    );
    let (back, warnings) = BattlEyeConfig::parse(&text).unwrap();
    assert_eq!(back, cfg);
    assert!(warnings.is_empty());
    let (lenient, warnings) =
        BattlEyeConfig::parse("rconpassword abc\r\n\r\nRCONPORT 2305\r\nFoo 1\n").unwrap();
    assert_eq!(lenient, BattlEyeConfig::new("abc", 2305));
    assert_eq!(warnings.len(), 1);
    assert_eq!(
        BattlEyeConfig::new("", 1)
            .render()
            .unwrap_err()
            .field_path(),
        Some("battleye.rcon_password")
    );
    assert!(BattlEyeConfig::new("a".repeat(33), 1).render().is_err());
    assert!(BattlEyeConfig::new("a".repeat(32), 1).render().is_ok());
    for bad in ["with space", "new\nRConPort 1", "sym!", "ümlaut"] {
        assert!(BattlEyeConfig::new(bad, 2310).render().is_err(), "{bad:?}");
    }
    assert!(BattlEyeConfig::new("ok", 0).render().is_err());
    let err = BattlEyeConfig::parse("RConPassword ok\nRConPort nope\n").unwrap_err();
    assert!(matches!(err, ConfigError::Import { pos, .. } if pos.line == 2));
    assert!(BattlEyeConfig::parse("RConPort 2310\n").is_err());
    assert!(!format!("{cfg:?}").contains("Secret123"));
}

#[test]
fn rcon_password_never_in_errors() {
    // The offending character is reported by position only.
    for (pw, index) in [
        ("Sec!ret", 4),
        ("Sec ret", 4),
        ("ümlaut", 1),
        ("ab\u{7}", 3),
        ("abcé", 4),
    ] {
        let err = BattlEyeConfig::new(pw, 2310).render().unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(text.contains(&format!("character {index} ")), "{text}");
        assert!(text.contains("letters and digits"), "{text}");
        let bad = pw.chars().nth(index - 1).unwrap();
        if !bad.is_whitespace() {
            assert!(!text.contains(bad), "{text}");
        }
        assert!(!text.contains(&format!("{:04X}", bad as u32)), "{text}");
        assert!(!text.contains(pw) && !text.contains("Sec"), "{text}");
    }
    let err = BattlEyeConfig::parse("RConPassword Hunter2#x\nRConPort 2310\n").unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, ConfigError::Import { pos, .. } if pos.line == 1));
    assert!(text.contains("character 8 "), "{text}");
    assert!(!text.contains('#') && !text.contains("Hunter"), "{text}");

    assert_eq!(
        ServerArch::from_executable("/srv/a3/arma3server_x64"),
        Some(ServerArch::X64)
    );
    assert_eq!(
        ServerArch::from_executable("C:\\a3\\arma3server_x64.exe"),
        Some(ServerArch::X64)
    );
    assert_eq!(
        ServerArch::from_executable("arma3server.exe"),
        Some(ServerArch::X86)
    );
    assert_eq!(
        ServerArch::from_executable("arma3server"),
        Some(ServerArch::X86)
    );
    assert_eq!(ServerArch::from_executable("arma3server_x86_64"), None);
    assert_eq!(
        config_file_name(HostOs::Windows, ServerArch::X64),
        "BEServer_x64.cfg"
    );
    assert_eq!(
        config_file_name(HostOs::Windows, ServerArch::X86),
        "BEServer.cfg"
    );
    assert_eq!(
        config_file_name(HostOs::Linux, ServerArch::X64),
        "beserver_x64.cfg"
    );
    assert_eq!(
        config_file_name(HostOs::Linux, ServerArch::X86),
        "beserver.cfg"
    );
    assert_eq!(battleye::MAX_PASSWORD_LEN, 32);
}

// ---------------------------------------------------------------------------
// Properties

/// Arbitrary text without control characters, biased towards config syntax.
fn safe_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[^\\x00-\\x1f\\x7f]{0,8}",
        Just("\"".to_owned()),
        Just("\"\"".to_owned()),
        Just("\\".to_owned()),
        Just("};".to_owned()),
        Just("class X {".to_owned()),
        Just("//".to_owned()),
        Just("/*".to_owned()),
        Just("*/".to_owned()),
        Just("\" \\n \"".to_owned()),
        Just("#include".to_owned()),
        Just("maxPlayers = 1;".to_owned()),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|v| v.concat())
}

fn finite_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1.0e6..1.0e6f64,
        Just(0.5),
        Just(1.0e-9),
        Just(123_456_789.0)
    ]
}

fn param_value() -> impl Strategy<Value = ParamValue> {
    prop_oneof![
        any::<i64>().prop_map(ParamValue::Int),
        finite_f64().prop_map(ParamValue::Float),
        safe_text().prop_map(ParamValue::Text)
    ]
}

fn mission() -> impl Strategy<Value = Mission> {
    (
        prop::option::of(prop_oneof!["Custom_[A-Za-z0-9]{1,6}", "Mission_[1-9]"]),
        safe_text().prop_filter("non-empty", |s| !s.trim().is_empty()),
        prop::option::of(safe_text()),
        prop::collection::vec(("p[A-Za-z0-9_]{0,6}", param_value()), 0..3),
    )
        .prop_map(|(class_name, template, difficulty, params)| {
            let mut seen: Vec<String> = Vec::new();
            let params = params
                .into_iter()
                .filter(|(n, _)| {
                    let fresh = !seen.iter().any(|s| s.eq_ignore_ascii_case(n));
                    seen.push(n.clone());
                    fresh
                })
                .map(|(name, value)| MissionParam { name, value })
                .collect();
            Mission {
                class_name,
                template,
                difficulty,
                params,
            }
        })
}

fn scalar_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        finite_f64().prop_map(Value::Float),
        safe_text().prop_map(Value::Str)
    ]
}

fn raw_value() -> impl Strategy<Value = Value> {
    scalar_value().prop_recursive(2, 8, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(Value::Array)
    })
}

fn server_config() -> impl Strategy<Value = ServerConfig> {
    (
        (
            safe_text(),
            prop::option::of(safe_text()),
            prop::option::of(safe_text()),
            prop::option::of(1i64..=1024),
        ),
        (
            prop::option::of(prop::collection::vec(safe_text(), 0..4)),
            prop::option::of(safe_text()),
            prop::option::of(0.0f64..=1.0),
        ),
        (
            prop::option::of(any::<bool>()),
            prop::option::of(any::<bool>().prop_map(Flag01)),
            prop::option::of((0i64..100, 0i64..100).prop_map(|(a, b)| Timeout::Pair(a, b))),
        ),
        prop::collection::vec(mission(), 0..3),
        prop::collection::vec(("x[A-Za-z0-9_]{0,8}", raw_value()), 0..3),
        prop::option::of(prop::collection::vec(raw_value(), 0..3)),
    )
        .prop_map(
            |(
                (hostname, password, on_user_connected, max_players),
                (motd, forced_difficulty, vote_threshold),
                (skip_lobby, battleye, voting_time_out),
                missions,
                extra,
                allowed_vote_cmds,
            )| {
                let mut seen: Vec<String> = Vec::new();
                let extra = extra
                    .into_iter()
                    .filter(|(n, _)| {
                        let fresh = !seen.iter().any(|s| s.eq_ignore_ascii_case(n));
                        seen.push(n.clone());
                        fresh
                    })
                    .map(|(name, value)| RawEntry { name, value })
                    .collect();
                // Class names must be unique as written (`None` is written
                // `Mission_<n>`); rename clashes to a name nothing else uses.
                let mut missions = missions;
                let mut names: Vec<String> = Vec::new();
                for (i, m) in missions.iter_mut().enumerate() {
                    let n = m.effective_class_name(i);
                    if names.iter().any(|x| x.eq_ignore_ascii_case(&n)) {
                        m.class_name = Some(format!("Dup_{i}"));
                    }
                    names.push(m.effective_class_name(i));
                }
                ServerConfig {
                    hostname,
                    password,
                    on_user_connected,
                    max_players,
                    motd,
                    forced_difficulty,
                    vote_threshold,
                    skip_lobby,
                    battleye,
                    voting_time_out,
                    missions,
                    extra,
                    allowed_vote_cmds,
                    ..Default::default()
                }
            },
        )
}

/// The names the model itself puts at the top level, in order.
fn expected_top_level(cfg: &ServerConfig) -> Vec<String> {
    cfg.to_items()
        .unwrap()
        .iter()
        .map(|i| i.name.clone())
        .collect()
}

fn class_names(items: &[Item]) -> Vec<String> {
    let mut out = Vec::new();
    for i in items {
        if let Body::Class {
            items: Some(inner), ..
        } = &i.body
        {
            out.push(i.name.clone());
            out.extend(
                class_names(inner)
                    .into_iter()
                    .map(|n| format!("{}.{n}", i.name)),
            );
        }
    }
    out
}

proptest! {
    #[test]
    fn any_accepted_server_config_round_trips(cfg in server_config()) {
        let text = cfg.render().unwrap();
        let (back, _) = ServerConfig::parse(&text).unwrap();
        prop_assert_eq!(&back, &cfg.clone().with_effective_class_names());
        // Exact identity once names are explicit, and the text is stable.
        let named = cfg.with_effective_class_names();
        prop_assert_eq!(&named.render().unwrap(), &text);
        let (again, _) = ServerConfig::parse(&named.render().unwrap()).unwrap();
        prop_assert_eq!(&again, &named);
    }

    #[test]
    fn values_never_add_parameters_or_classes(cfg in server_config()) {
        let text = cfg.render().unwrap();
        let parsed = syntax::parse(&text).unwrap();
        let names: Vec<String> = parsed.iter().map(|i| i.name.clone()).collect();
        prop_assert_eq!(names, expected_top_level(&cfg));
        prop_assert_eq!(class_names(&parsed), class_names(&cfg.to_items().unwrap()));
    }

    #[test]
    fn control_chars_are_rejected_with_path(
        prefix in safe_text(), suffix in safe_text(),
        c in prop_oneof![(0u32..0x20), Just(0x7f)].prop_map(|u| char::from_u32(u).unwrap_or('\0')),
        slot in 0usize..5,
    ) {
        let bad = format!("{prefix}{c}{suffix}");
        let mut cfg = ServerConfig { hostname: "ok".into(), ..Default::default() };
        let expected = match slot {
            0 => { cfg.hostname = bad; "server.hostname" }
            1 => { cfg.motd = Some(vec!["a".into(), "b".into(), bad]); "server.motd[2]" }
            2 => { cfg.missions = vec![Mission { template: bad, ..Default::default() }]; "server.missions[0].template" }
            3 => { cfg.password_admin = Some(bad); "server.password_admin" }
            _ => { cfg.extra = vec![RawEntry { name: "x".into(), value: Value::Str(bad) }]; "server.extra[0].value" }
        };
        let err = cfg.render().unwrap_err();
        prop_assert_eq!(err.field_path(), Some(expected));
        let is_control_problem = matches!(err, ConfigError::Field { problem: FieldProblem::ControlChar { .. }, .. });
        prop_assert!(is_control_problem);
    }

    #[test]
    fn generic_strings_round_trip(s in safe_text()) {
        let text = syntax::render(&[Item::value("s", Value::Str(s.clone()))], "t").unwrap();
        let items = syntax::parse(&text).unwrap();
        prop_assert_eq!(items.len(), 1);
        prop_assert_eq!(&items[0].body, &Body::Value(Value::Str(s)));
    }

    #[test]
    fn any_accepted_basic_config_round_trips(cfg in basic_config()) {
        let text = cfg.render().unwrap();
        let (back, _) = BasicConfig::parse(&text).unwrap();
        prop_assert_eq!(&back, &cfg);
        prop_assert_eq!(back.render().unwrap(), text);
    }

    #[test]
    fn any_accepted_profile_round_trips(profile in arma3_profile()) {
        let text = profile.render().unwrap();
        let (back, warnings) = Arma3Profile::parse(&text).unwrap();
        prop_assert_eq!(&back, &profile);
        prop_assert!(warnings.is_empty());
        prop_assert_eq!(back.render().unwrap(), text);
    }

    #[test]
    fn parser_never_panics(s in hostile_text()) {
        let _ = syntax::parse(&s);
        let _ = ServerConfig::parse(&s);
        let _ = BasicConfig::parse(&s);
        let _ = Arma3Profile::parse(&s);
        let _ = BattlEyeConfig::parse(&s);
    }
}

/// Inputs for the never-panics property: any Unicode (including controls,
/// BOMs, surrogate-free astral chars), bytes decoded lossily as an uploaded
/// file would be, and soups of config tokens that reach deep parser states.
fn hostile_text() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("class ".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just(";".to_owned()),
        Just("=".to_owned()),
        Just("[]".to_owned()),
        Just("+=".to_owned()),
        Just(",".to_owned()),
        Just(":".to_owned()),
        Just("\"".to_owned()),
        Just("//".to_owned()),
        Just("/*".to_owned()),
        Just("*/".to_owned()),
        Just("\n".to_owned()),
        Just("#include".to_owned()),
        Just("\u{feff}".to_owned()),
        Just("Missions".to_owned()),
        Just("template".to_owned()),
        Just("RConPassword ".to_owned()),
        "[a-zA-Z_0-9.-]{1,8}",
        any::<char>().prop_map(String::from),
    ];
    prop_oneof![
        any::<String>(),
        "\\PC{0,200}",
        proptest::collection::vec(any::<u8>(), 0..300)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        proptest::collection::vec(token, 0..80).prop_map(|t| t.concat()),
    ]
}

fn basic_config() -> impl Strategy<Value = BasicConfig> {
    let int = |lo: i64, hi: i64| prop::option::of(lo..=hi);
    let unit = || prop::option::of(prop_oneof![0.0..=1.0f64, Just(0.001), Just(1.0)]);
    (
        (
            int(1, 100_000),
            int(1, 65_507),
            int(1, 65_507),
            int(0, i64::from(i32::MAX)),
            int(0, i64::from(i32::MAX)),
            int(0, i64::from(i32::MAX)),
        ),
        (
            unit(),
            unit(),
            prop::option::of(0.0..=100.0f64),
            int(0, 40_000),
            int(256, 65_507),
            prop::collection::vec(("x[A-Za-z0-9_]{0,6}", raw_value()), 0..4),
        ),
    )
        .prop_map(
            |(
                (
                    max_msg_send,
                    max_size_guaranteed,
                    max_size_nonguaranteed,
                    min_bandwidth,
                    max_bandwidth,
                    max_custom_file_size,
                ),
                (
                    min_error_to_send,
                    min_error_to_send_near,
                    terrain_grid,
                    view_distance,
                    max_packet_size,
                    extra,
                ),
            )| {
                let mut seen: Vec<String> = Vec::new();
                let extra = extra
                    .into_iter()
                    .filter(|(n, _)| {
                        let fresh = !seen.iter().any(|s| s.eq_ignore_ascii_case(n));
                        seen.push(n.clone());
                        fresh
                    })
                    .map(|(name, value)| RawEntry { name, value })
                    .collect();
                BasicConfig {
                    max_msg_send,
                    max_size_guaranteed,
                    max_size_nonguaranteed,
                    min_bandwidth,
                    max_bandwidth,
                    min_error_to_send,
                    min_error_to_send_near,
                    max_custom_file_size,
                    terrain_grid,
                    view_distance,
                    max_packet_size,
                    extra,
                }
            },
        )
}

fn arma3_profile() -> impl Strategy<Value = Arma3Profile> {
    (
        prop::collection::vec(prop::option::of(0i64..=1), 24),
        prop::option::of(0i64..=3),
        prop::option::of(prop_oneof![0.0..=1.0f64, Just(0.0), Just(1.0)]),
        prop::option::of(prop_oneof![0.0..=1.0f64, Just(0.5)]),
    )
        .prop_map(|(o, ai_level_preset, skill_ai, precision_ai)| {
            let options = DifficultyOptions {
                reduced_damage: o[0],
                group_indicators: o[1],
                friendly_tags: o[2],
                enemy_tags: o[3],
                detected_mines: o[4],
                commands: o[5],
                waypoints: o[6],
                tactical_ping: o[7],
                weapon_info: o[8],
                stance_indicator: o[9],
                stamina_bar: o[10],
                weapon_crosshair: o[11],
                vision_aid: o[12],
                third_person_view: o[13],
                camera_shake: o[14],
                score_table: o[15],
                death_messages: o[16],
                von_id: o[17],
                map_content_friendly: o[18],
                map_content_enemy: o[19],
                map_content_mines: o[20],
                auto_report: o[21],
                multiple_saves: o[22],
                squad_radar: o[23],
            };
            Arma3Profile {
                custom_difficulty: CustomDifficulty {
                    options,
                    ai_level_preset,
                },
                custom_ai_level: CustomAiLevel {
                    skill_ai,
                    precision_ai,
                },
            }
        })
}
