//! The whole server: reads arguments and configs, writes the RPT, binds the ports,
//! runs RCon, A2S and the player simulation, and decides the exit code.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use tokio::net::UdpSocket;

use super::a2s::{A2sServer, GAME_VERSION};
use super::args::{LaunchArgs, SimOptions, help_text};
use super::commands::be_cfg_path;
use super::compat::now_local;
use super::configs::{BattlEyeSettings, ServerSettings, parse_config};
use super::players::run_script;
use super::rcon_server::RconServer;
use super::rpt_writer::Rpt;
use super::world::{Shared, World};

/// Exit code of a simulated crash (like a SIGSEGV'd process seen through a shell).
pub const CRASH_EXIT_CODE: i32 = 139;

/// Whether the exe name is a 64-bit server (`arma3server_x64`, or anything that is
/// not literally the 32-bit `arma3server`/`arma3serverprofiling`).
pub fn is_x64(program: &str) -> bool {
    let stem = Path::new(program)
        .file_stem()
        .map(|s| s.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    !matches!(stem.as_str(), "arma3server" | "arma3serverprofiling")
}

fn quote_arg(a: &str) -> String {
    if a.contains(' ') && !a.starts_with('"') {
        format!("\"{a}\"")
    } else {
        a.to_string()
    }
}

fn write_header(rpt: &Rpt, program: &str, args: &[String], cpus: usize) {
    let rule = "=====================================================================";
    let exe = std::fs::canonicalize(program)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| program.to_string());
    let now = now_local();
    rpt.raw(rule);
    rpt.raw(&format!("== {exe}"));
    let cmd: Vec<String> = args.iter().map(|a| quote_arg(a)).collect();
    rpt.raw(&format!("== {exe} {}", cmd.join(" ")));
    rpt.raw("");
    rpt.raw("Original output filename: Arma3Retail_Server_x64");
    rpt.raw("Exe timestamp: 2024/11/05 10:31:57");
    rpt.raw(&format!(
        "Current time:  {:04}/{:02}/{:02} {:02}:{:02}:{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    ));
    rpt.raw("");
    rpt.raw("Type: Public");
    rpt.raw("Build: Stable");
    rpt.raw(&format!("Version: {GAME_VERSION}"));
    rpt.raw("");
    rpt.raw("Allocator: ./libtbb4malloc_bi_x64.so [2017.0.0.0] [2017.0.0.0]");
    rpt.raw(&format!(
        "PhysMem: 16 GiB, VirtMem : 131072 GiB, AvailPhys : 12 GiB, AvailVirt : 131068 GiB, AvailPageFile : 8 GiB, PageSize : 4.0 KiB/2.0 MiB/HasLockMemory, CPUCount : {cpus}"
    ));
    rpt.raw(rule);
    rpt.raw("");
}

fn write_mod_list(rpt: &Rpt, launch: &LaunchArgs) {
    let row = |name: &str, dir: &str, default: &str, origin: &str, path: &str| {
        format!(
            "{name:>40} | {dir:>20} | {default:>7} | {origin:>10} | da39a3ee5e6b4b0d3255bfef95601890afd80709 | 11fdd19c | {path}"
        )
    };
    rpt.short("============================================================================================= List of mods ===============================================================================================");
    rpt.short("modsReadOnly = true");
    rpt.short("safeModsActivated = false");
    rpt.short("customMods = true");
    rpt.short("hash = '1F3C8E5D8D0D6F1A2B6C3E4D5F60718293A4B5C6'");
    rpt.short("hashShort = '9a1b2c3d'");
    for m in launch
        .list("mod")
        .iter()
        .chain(launch.list("servermod").iter())
    {
        let dir = Path::new(m)
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| m.clone());
        rpt.short(&row(&dir, &dir, "false", "GAME DIR", m));
    }
    for (name, dir) in [
        ("Arma 3 Contact (Platform)", "enoch"),
        ("Arma 3 Zeus", "curator"),
        ("Arma 3", "A3"),
    ] {
        rpt.short(&row(name, dir, "true", "NOT FOUND", ""));
    }
    rpt.short("==========================================================================================================================================================================================================");
}

fn bind_ip(launch: &LaunchArgs) -> IpAddr {
    launch
        .value("ip")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Runs the simulator with `argv` (program name first) and an environment map;
/// returns the process exit code.
pub async fn run(argv: Vec<String>, env: HashMap<String, String>) -> i32 {
    let program = argv
        .first()
        .cloned()
        .unwrap_or_else(|| "arma3server_x64".into());
    let args: Vec<String> = argv.iter().skip(1).cloned().collect();
    if args
        .iter()
        .any(|a| matches!(a.as_str(), "--help" | "-help" | "-?" | "/?"))
    {
        print!("{}", help_text());
        return 0;
    }
    let launch = LaunchArgs::new(&args);
    let opts = match SimOptions::from_sources(&launch, &env) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("arma3server-sim: {e}");
            return 2;
        }
    };
    let x64 = is_x64(&program);
    let profiles = launch
        .path("profiles")
        .unwrap_or_else(|| PathBuf::from("."));
    let no_logs = launch.flag("nologs");
    let rpt = if no_logs {
        Rpt::off()
    } else if opts.windows {
        match Rpt::file_in(&profiles, x64) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("Cannot create log file in {}: {e}", profiles.display());
                return 1;
            }
        }
    } else {
        Rpt::stdout()
    };
    let port = launch.port();
    rpt.console(&format!(
        "Arma 3 Console version {GAME_VERSION} {} : port {port}",
        if x64 { "x64" } else { "x86" }
    ));
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    write_header(&rpt, &program, &args, cpus);

    let mut seed_rng = match opts.seed {
        Some(s) => StdRng::seed_from_u64(s),
        None => StdRng::from_os_rng(),
    };

    rpt.short("SteamAPI initialization failed. Steam features won't be accessible!");
    rpt.short("Initializing stats manager.");
    rpt.short("Stats config disabled.");
    let mut session = [0u8; 20];
    seed_rng.fill_bytes(&mut session);
    rpt.short(&format!(
        "sessionID: {}",
        session
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ));
    if let Some(fps) = launch.value("limitfps") {
        rpt.short(&format!("Server FPS limit: {fps}"));
    }

    // server.cfg: a missing or broken file is fatal.
    let config_path = launch.path("config");
    let settings = match &config_path {
        None => ServerSettings::default(),
        Some(path) => match std::fs::read_to_string(path) {
            Err(_) => {
                let msg = format!("ErrorMessage: Cannot open file '{}'", path.display());
                rpt.short(&msg);
                eprintln!("{msg}");
                return 1;
            }
            Ok(text) => match ServerSettings::from_text(&text) {
                Ok(s) => s,
                Err(e) => {
                    let msg = format!(
                        "ErrorMessage: File {}, line {}: Config: {}",
                        path.display(),
                        e.line,
                        e.message
                    );
                    rpt.short(&msg);
                    eprintln!("{msg}");
                    return 1;
                }
            },
        },
    };
    if let Some(cfg) = launch.path("cfg") {
        match std::fs::read_to_string(&cfg) {
            Ok(text) => {
                if let Err(e) = parse_config(&text) {
                    rpt.short(&format!(
                        "Warning Message: File {}, line {}: {}",
                        cfg.display(),
                        e.line,
                        e.message
                    ));
                }
            }
            Err(_) => rpt.short(&format!(
                "Warning Message: Cannot open file '{}', using defaults",
                cfg.display()
            )),
        }
    }
    write_mod_list(&rpt, &launch);
    rpt.short("Updating base class RscShortcutButton->RscButton, by a3\\editor_f\\config.bin/RscDisplayEditObject/Controls/B_OK/ (original bin\\config.bin)");
    rpt.short("Warning Message: No entry 'bin\\config.bin/CfgVehicles/Land_TTowerBig_1_F.scope'.");

    // BattlEye working dir and cfg.
    let be_dir = launch
        .path("bepath")
        .unwrap_or_else(|| profiles.join("BattlEye"));
    let be = be_cfg_path(&be_dir, x64, opts.windows)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| BattlEyeSettings::from_text(&t))
        .unwrap_or_default();

    let world_rng = StdRng::seed_from_u64(seed_rng.random());
    let cast_seed: u64 = seed_rng.random();
    let script_seed: u64 = seed_rng.random();
    let mut world = World::new(settings.clone(), world_rng, be_dir);
    world.ping_seed = seed_rng.random();
    world.rcon_password = be.rcon_password.clone();
    world.restrict_rcon = be.restrict_rcon;
    world.max_ping = be.max_ping;
    world.config_path = config_path;
    world.load_bans();
    let (shared, be_rx, mut exit_rx) = Shared::new(world, rpt, opts.clone(), port, x64);
    let shared = Arc::new(shared);

    let ip = bind_ip(&launch);
    let game_sock = match UdpSocket::bind(SocketAddr::new(ip, port)).await {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("ErrorMessage: Cannot create host on port {port}: {e}");
            shared.rpt.short(&msg);
            eprintln!("{msg}");
            return 1;
        }
    };
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while game_sock.recv_from(&mut buf).await.is_ok() {}
    });

    let step = opts.startup_delay / 10;
    shared.rpt.short("InitSound ...");
    shared.rpt.short("InitSound - complete");
    tokio::time::sleep(step * 4).await;
    shared.rpt.short("PhysX3 SDK Init started ...");
    shared.rpt.short("PhysX3 SDK Init ended.");
    shared.rpt.short("Dedicated host created.");
    shared.rpt.set_format(settings.timestamp_format);
    tokio::time::sleep(step * 3).await;

    if settings.battleye {
        shared.rpt.log("BattlEye server updated to version: 217");
        shared.rpt.log("BattlEye Server: Initialized (v1.217)");
    }
    let mut be_rx = Some(be_rx);
    if let (true, Some(_), Some(rport)) = (settings.battleye, &be.rcon_password, be.rcon_port) {
        let rip = be
            .rcon_ip
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(ip);
        match UdpSocket::bind(SocketAddr::new(rip, rport)).await {
            Ok(sock) => {
                if let Some(rx) = be_rx.take() {
                    tokio::spawn(RconServer::new(sock, shared.clone()).run(rx));
                }
            }
            Err(e) => {
                let msg = format!("BattlEye Server: Failed to bind RCon port {rport}: {e}");
                shared.rpt.log(&msg);
                eprintln!("{msg}");
                return 1;
            }
        }
    }
    if let Some(mut rx) = be_rx {
        // no RCon: keep draining so senders never pile up
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
    }
    let qport = port.wrapping_add(1);
    match UdpSocket::bind(SocketAddr::new(ip, qport)).await {
        Ok(sock) => {
            tokio::spawn(A2sServer::new(sock, shared.clone()).run());
        }
        Err(e) => {
            let msg = format!("ErrorMessage: Cannot open Steam query port {qport}: {e}");
            shared.rpt.log(&msg);
            eprintln!("{msg}");
            return 1;
        }
    }
    shared
        .rpt
        .log(&format!("Game Port: {port}, Steam Query Port: {qport}"));
    tokio::time::sleep(step * 3).await;
    shared.rpt.log("Host identity created.");
    if opts.windows {
        shared.rpt.console("Host identity created.");
    }

    let autostart = launch.flag("autoinit") && !settings.missions.is_empty();
    {
        let mut w = shared.lock();
        match settings.missions.first() {
            Some(m) if autostart => {
                shared.start_mission(&mut w, &m.template, &m.difficulty);
                // scripts starting up: the usual noise of a real mission
                shared
                    .rpt
                    .log("Error in expression <if (isNil \"_veh\") exitWith {};>");
                shared.rpt.log("  Error position: <_veh\") exitWith {};>");
                shared
                    .rpt
                    .log("  Error Undefined variable in expression: _veh");
                shared
                    .rpt
                    .log("  File mpmissions\\__cur_mp.Altis\\functions\\fn_init.sqf..., line 12");
            }
            _ => shared.rpt.log("Waiting for next game."),
        }
    }

    tokio::spawn(run_script(shared.clone(), cast_seed, script_seed));
    if opts.rpt_spam > 0 {
        tokio::spawn(spam(shared.clone()));
    }
    if let Some(after) = opts.crash_after {
        let s = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after.saturating_sub(s.started.elapsed())).await;
            crash(&s);
        });
    }
    if let Some(after) = opts.hang_after {
        let s = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after.saturating_sub(s.started.elapsed())).await;
            s.rpt.log("Server: Network message 8a3c is pending");
            s.hung.store(true, Ordering::SeqCst);
            s.rpt.silence();
        });
    }
    tokio::spawn(signals(shared.clone()));

    loop {
        if let Some(code) = *exit_rx.borrow_and_update() {
            // let the last datagrams and lines out
            tokio::time::sleep(Duration::from_millis(50)).await;
            return code;
        }
        if exit_rx.changed().await.is_err() {
            return 0;
        }
    }
}

fn crash(s: &Shared) {
    if s.is_hung() {
        std::process::exit(CRASH_EXIT_CODE);
    }
    s.rpt
        .log("Server: Object 2:15953 not found (message Type_120)");
    s.rpt
        .raw("=======================================================");
    s.rpt
        .raw("-------------------------------------------------------");
    s.rpt
        .raw("Exception code: C0000005 ACCESS_VIOLATION at 7FF6A1B2C3D4");
    s.rpt.raw("Version 2.18.152302");
    s.rpt
        .raw("Fault address:  7FF6A1B2C3D4 01:00BAC3D4 arma3server_x64");
    s.rpt.raw("file:     __cur_mp");
    s.rpt
        .raw("=======================================================");
    s.rpt.console("Segmentation fault (core dumped)");
    std::process::exit(CRASH_EXIT_CODE);
}

async fn spam(s: Arc<Shared>) {
    const LINES: &[&str] = &[
        "NetServer: trying to send a too large non-guaranteed message (len=1348/1364) to 1104393217",
        "Server: Object 2:15953 not found (message Type_120)",
        "Warning: Could not parse squad.xml for Player[Fritz], Squad[https://example.invalid/squad.xml]",
        "Error in expression <_unit setDamage _dmg;\n_unit>",
        "  Error position: <_dmg;\n_unit>",
        "  Error Undefined variable in expression: _dmg",
        "Warning Message: Script \\userconfig\\cba\\settings.sqf not found",
        "Ref to nonnetwork object 1a2b3c4d: <no shape>",
    ];
    let per_tick = f64::from(s.opts.rpt_spam) / 10.0;
    let mut owed = 0.0f64;
    let mut i = 0usize;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if s.is_hung() {
            continue;
        }
        owed += per_tick;
        while owed >= 1.0 {
            if s.opts.rpt_spam_numbered {
                s.rpt.log(&format!("{} [{i}]", LINES[i % LINES.len()]));
            } else {
                s.rpt.log(LINES[i % LINES.len()]);
            }
            i += 1;
            owed -= 1.0;
        }
    }
}

async fn signals(s: Arc<Shared>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        if s.opts.ignore_shutdown {
            continue;
        }
        {
            let mut w = s.lock();
            s.end_mission(&mut w);
        }
        s.request_exit(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exe_names() {
        assert!(is_x64("/srv/arma3server_x64"));
        assert!(is_x64("arma3server-sim"));
        assert!(!is_x64("./arma3server"));
        assert!(!is_x64("C:\\a3\\arma3server.exe") || cfg!(unix));
    }
}
