//! What an Arma 3 spec becomes on disk and on the command line: the files (server.cfg,
//! basic.cfg, the BattlEye config, the difficulty profile) at their paths inside the
//! server folder, the argv, the ports and where the log comes from. Computed here once,
//! so the agent writes exactly what the controller's preview shows.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::config::battleye::config_file_name;
use super::config::profile::profile_path;
use super::config::{BattlEyeConfig, ConfigError, HostOs, ServerArch, TimeStampFormat};
use super::launch::{GamePorts, LaunchArgs, LaunchError};
use super::spec::{Arma3Launch, Arma3Spec, LogSource};
use crate::games::{FileView, LogPlan, PlanError, PlannedFile};

/// Folder (inside the server folder) for `-profiles`: RPT on Windows, the profile.
pub const PROFILES_DIR: &str = "profiles";
/// Folder for `-bepath`: the BattlEye config, bans and filters.
pub const BATTLEYE_DIR: &str = "battleye";
/// Shown instead of a secret in a preview.
pub const MASK: &str = "********";

/// An Arma 3 server's files, argv, ports and log.
#[derive(Debug, Clone)]
pub struct ArmaPlan {
    /// Files relative to the server folder.
    pub files: Vec<PlannedFile>,
    /// Arguments after the executable.
    pub args: Vec<String>,
    /// The port layout.
    pub ports: GamePorts,
    /// Where log lines come from.
    pub log: LogPlan,
    /// How the server prefixes log lines with a time.
    pub timestamps: TimeStampFormat,
}

/// The host OS the executable is built for (`.exe`: Windows).
pub fn host_os(executable: &str) -> HostOs {
    if executable.ends_with(".exe") {
        HostOs::Windows
    } else {
        HostOs::Linux
    }
}

fn config_error(e: ConfigError) -> PlanError {
    PlanError {
        field: e.field_path().map(str::to_owned),
        message: e.to_string(),
    }
}

fn launch_error(e: LaunchError) -> PlanError {
    PlanError {
        field: Some("launch".into()),
        message: e.to_string(),
    }
}

/// The command line of a server with these launch parameters in `server_dir`: the one
/// builder the agent launches with and the controller validates a launch section with.
pub fn launch_args(launch: &Arma3Launch, game_port: u16, server_dir: &Path) -> LaunchArgs {
    let mut args = LaunchArgs::new(game_port)
        .config("server.cfg")
        .cfg("basic.cfg")
        // Absolute on the agent: some Linux builds ignore a relative -bepath.
        .profiles(server_dir.join(PROFILES_DIR).display().to_string())
        .bepath(server_dir.join(BATTLEYE_DIR).display().to_string())
        .name(launch.profile_name.clone())
        .auto_init(launch.auto_init)
        .load_mission_to_memory(launch.load_mission_to_memory);
    for m in &launch.mods {
        args = args.add_mod(m.clone());
    }
    for m in &launch.server_mods {
        args = args.add_server_mod(m.clone());
    }
    if let Some(fps) = launch.limit_fps {
        args = args.limit_fps(fps);
    }
    for extra in &launch.extra {
        args = args.extra(extra.clone());
    }
    args
}

/// Plans an Arma 3 server in `server_dir` (absolute on the agent; the preview passes
/// an empty path and gets paths relative to the server folder). With
/// [`FileView::Masked`] every secret in the files is replaced by [`MASK`].
pub fn plan(arma: &Arma3Spec, server_dir: &Path, view: FileView) -> Result<ArmaPlan, PlanError> {
    let ports = GamePorts::new(arma.game_port, Some(arma.rcon_port)).map_err(|e| PlanError {
        field: Some("rcon_port".into()),
        message: e.to_string(),
    })?;
    let exe_name = Path::new(&arma.executable)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let os = host_os(exe_name);
    // Unknown names (refused later by the allow-list anyway) are treated as 64-bit.
    let arch = ServerArch::from_executable(exe_name).unwrap_or(ServerArch::X64);
    let masked = view == FileView::Masked;

    let server_cfg = if masked {
        arma.server.render_masked()
    } else {
        arma.server.render()
    }
    .map_err(config_error)?;
    let mut files = vec![
        PlannedFile {
            path: "server.cfg".into(),
            contents: server_cfg.into_bytes(),
            // Holds the join and admin passwords.
            secret: true,
        },
        PlannedFile {
            path: "basic.cfg".into(),
            contents: arma.basic.render().map_err(config_error)?.into_bytes(),
            secret: false,
        },
    ];
    let mut battleye = BattlEyeConfig::new(arma.rcon_password.clone(), arma.rcon_port);
    // RCon only needs to reach the agent on this host; nothing else should see it.
    battleye.rcon_ip = Some(Ipv4Addr::LOCALHOST.into());
    battleye.max_ping = arma.max_ping;
    battleye.restrict_rcon = arma.restrict_rcon;
    let mut battleye_text = battleye.render().map_err(|e| {
        let mut e = config_error(e);
        e.field = Some("rcon.password".into());
        e
    })?;
    if masked {
        // The password is checked above (letters and digits only), so its line is
        // exactly this.
        battleye_text = battleye_text.replace(
            &format!("RConPassword {}\n", arma.rcon_password),
            &format!("RConPassword {MASK}\n"),
        );
    }
    files.push(PlannedFile {
        path: Path::new(BATTLEYE_DIR).join(config_file_name(os, arch)),
        contents: battleye_text.into_bytes(),
        secret: true,
    });
    if let Some(profile) = &arma.profile {
        let path = profile_path(Path::new(PROFILES_DIR), &arma.launch.profile_name, os)
            .map_err(config_error)?;
        files.push(PlannedFile {
            path,
            contents: profile.render().map_err(config_error)?.into_bytes(),
            secret: false,
        });
    }

    let launch = &arma.launch;
    let args = launch_args(launch, arma.game_port, server_dir)
        .build()
        .map_err(launch_error)?;

    let log = match launch.log_source.unwrap_or(match os {
        HostOs::Linux => LogSource::Console,
        HostOs::Windows => LogSource::RptFile,
    }) {
        LogSource::Console => LogPlan::Console,
        LogSource::RptFile => LogPlan::Files {
            dir: PathBuf::from(PROFILES_DIR),
            prefix: String::new(),
            suffix: ".rpt".into(),
        },
    };
    Ok(ArmaPlan {
        files,
        args,
        ports,
        log,
        timestamps: arma
            .server
            .time_stamp_format
            .unwrap_or(TimeStampFormat::None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arma::config::ServerConfig;
    use crate::arma::spec::Arma3Launch;

    fn spec() -> Arma3Spec {
        Arma3Spec {
            executable: "/srv/arma3/arma3server_x64".into(),
            game_port: 2302,
            rcon_port: 2312,
            rcon_password: "Secret42".into(),
            max_ping: None,
            restrict_rcon: None,
            server: ServerConfig {
                hostname: "Alpha".into(),
                password_admin: Some("adminpw".into()),
                ..ServerConfig::default()
            },
            basic: Default::default(),
            profile: Some(Default::default()),
            launch: Arma3Launch {
                mods: vec!["@cba_a3".into()],
                ..Arma3Launch::default()
            },
        }
    }

    #[test]
    fn the_plan_names_every_file_and_marks_the_secret_ones() {
        let plan = plan(&spec(), Path::new("/srv/s/alpha"), FileView::Clear).unwrap();
        let names: Vec<_> = plan.files.iter().map(|f| f.path.clone()).collect();
        assert_eq!(
            names,
            vec![
                PathBuf::from("server.cfg"),
                PathBuf::from("basic.cfg"),
                PathBuf::from("battleye/beserver_x64.cfg"),
                PathBuf::from("profiles/home/server/server.Arma3Profile"),
            ]
        );
        let secret: Vec<_> = plan.files.iter().map(|f| f.secret).collect();
        assert_eq!(secret, vec![true, false, true, false]);
        assert!(
            plan.args
                .contains(&"-bepath=/srv/s/alpha/battleye".to_string())
        );
        assert_eq!(plan.log, LogPlan::Console);
    }

    #[test]
    fn a_masked_plan_carries_no_secret() {
        let plan = plan(&spec(), Path::new(""), FileView::Masked).unwrap();
        for f in &plan.files {
            let text = String::from_utf8_lossy(&f.contents);
            assert!(!text.contains("Secret42"), "{}: {text}", f.path.display());
            assert!(!text.contains("adminpw"), "{}: {text}", f.path.display());
        }
        let be = String::from_utf8_lossy(&plan.files[2].contents).into_owned();
        assert!(be.contains(&format!("RConPassword {MASK}")), "{be}");
        assert!(plan.args.contains(&"-bepath=battleye".to_string()));
    }

    #[test]
    fn windows_executables_get_their_file_names_and_the_rpt() {
        let mut s = spec();
        s.executable = "C:/arma3/arma3server_x64.exe".into();
        let plan = plan(&s, Path::new(""), FileView::Clear).unwrap();
        assert!(
            plan.files
                .iter()
                .any(|f| f.path == Path::new("battleye/BEServer_x64.cfg"))
        );
        assert!(matches!(plan.log, LogPlan::Files { ref suffix, .. } if suffix == ".rpt"));
    }

    #[test]
    fn errors_name_the_field_and_never_the_password() {
        let mut s = spec();
        s.rcon_password = "bad pass word".into();
        let err = plan(&s, Path::new(""), FileView::Clear).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("rcon.password"));
        assert!(!err.message.contains("bad pass word"), "{}", err.message);
        let mut s = spec();
        s.rcon_port = 2304;
        let err = plan(&s, Path::new(""), FileView::Clear).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("rcon_port"));
    }
}
