//! `languard-demo`: Languard on this machine in one command — a controller on SQLite,
//! one enrolled local agent and two simulated Arma 3 servers, all real processes. For
//! trying the API and the console: it prints the console address and the controller's
//! one-time `admin` password. Ctrl-C (or SIGTERM, or any failure) stops everything it
//! started, games included; the data folder stays.
//!
//! The first-start `admin` must change its password before it may do anything else, so
//! the demo sets the fleet up with its own admin account, `languard-demo` (a random
//! password it never shows), and disables that account when it stops.

#[path = "demo/api.rs"]
mod api;
#[path = "demo/args.rs"]
mod args;
#[path = "demo/procs.rs"]
mod procs;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};

use api::{Api, SimServer};
use args::{Args, Parsed};
use procs::{Agent, Bins, Controller};

/// Why the demo stopped early: printed as one line, `languard-demo: <what went wrong>`.
#[derive(Debug)]
pub struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The account the demo provisions with.
const SETUP_USER: &str = "languard-demo";

/// Simulator knobs (extra launch parameters): a few players chatting, some log noise.
const KNOBS: [&str; 3] = [
    "-sim_players=3",
    "-sim_chat_interval_ms=4000",
    "-sim_rpt_spam=2",
];

const SERVERS: [&str; 2] = ["altis-1", "tanoa-1"];

/// How long the shutdown waits for the API to stop the servers before killing them.
const API_STOP_WITHIN: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> ExitCode {
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("languard-demo: cannot read the current folder: {e}");
            return ExitCode::FAILURE;
        }
    };
    let args = match args::parse(std::env::args_os().skip(1), &cwd) {
        Ok(Parsed::Help) => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Run(a)) => a,
        Err(e) => {
            eprintln!(
                "languard-demo: {e}\n{}\nTry `languard-demo --help`.",
                args::SYNOPSIS
            );
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("languard-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    // Installed first, so a Ctrl-C during start-up also stops what was started so far.
    let mut signals = Signals::install()?;
    let bins = Bins::next_to_me()?;
    if args.dir.exists() {
        return Err(Failure(format!(
            "{} already exists: remove it or pass another folder",
            args.dir.display()
        )));
    }
    port_free(args.listen, "--listen")?;
    port_free(args.link_listen, "--link-listen")?;
    let mut demo = Demo {
        bins,
        args,
        controller: None,
        agent: None,
        api: None,
        servers: Vec::new(),
    };
    let outcome = tokio::select! {
        r = demo.start_and_watch() => r,
        s = signals.next() => {
            eprintln!("\n{s}: stopping");
            Ok(())
        }
    };
    // Stopped first, so the reason is the last line printed.
    demo.shutdown().await;
    outcome
}

/// Checks up front that an address can be bound, for a clear error before anything is
/// created (the controller would fail the same way, later).
fn port_free(addr: SocketAddr, flag: &str) -> Result<(), Failure> {
    std::net::TcpListener::bind(addr).map(drop).map_err(|e| {
        Failure(format!(
            "cannot listen on {addr} ({e}): stop what uses it or pass {flag} ADDR"
        ))
    })
}

/// SIGINT and SIGTERM.
struct Signals {
    int: Signal,
    term: Signal,
}

impl Signals {
    fn install() -> Result<Self, Failure> {
        let install =
            |kind| signal(kind).map_err(|e| Failure(format!("cannot handle signals: {e}")));
        Ok(Signals {
            int: install(SignalKind::interrupt())?,
            term: install(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "interrupted",
            _ = self.term.recv() => "terminated",
        }
    }
}

/// Everything the demo started, so that [`Demo::shutdown`] can stop exactly that.
struct Demo {
    bins: Bins,
    args: Args,
    controller: Option<Controller>,
    agent: Option<Agent>,
    api: Option<Api>,
    /// (name, id) of the servers created so far.
    servers: Vec<(String, String)>,
}

impl Demo {
    fn controller_dir(&self) -> PathBuf {
        self.args.dir.join("controller")
    }

    fn agent_dir(&self) -> PathBuf {
        self.args.dir.join("agent")
    }

    /// Starts the fleet, prints how to use it, then waits; returns only on a failure
    /// (a signal ends it from outside). Each process is recorded before the next await.
    async fn start_and_watch(&mut self) -> Result<(), Failure> {
        let (ctl_dir, agent_dir) = (self.controller_dir(), self.agent_dir());
        for d in [&ctl_dir, &agent_dir] {
            std::fs::create_dir_all(d)
                .map_err(|e| Failure(format!("cannot create {}: {e}", d.display())))?;
        }
        procs::check_game_user_can_reach(&self.bins, &agent_dir)?;
        println!("Starting the controller ({})", self.args.listen);
        let ctl = self.controller.insert(Controller::spawn(
            &self.bins,
            &ctl_dir,
            self.args.listen,
            self.args.link_listen,
        )?);
        let admin_password = ctl.ready().await?;
        let setup_password = random_secret()?;
        ctl.create_admin(&self.bins, SETUP_USER, &setup_password)
            .await?;
        let base = format!("http://{}", self.args.listen);
        let api = self
            .api
            .insert(Api::login(&base, SETUP_USER, &setup_password).await?)
            .clone();

        println!("Enrolling the local agent");
        let host = api.create_host("local").await?;
        let token = api.join_token(&host).await?;
        Agent::enroll(&self.bins, &agent_dir, self.args.link_listen, &token).await?;
        self.agent = Some(Agent::spawn(&self.bins, &agent_dir)?);

        let rcon_password = random_secret()?;
        let executable = self.bins.game.to_string_lossy().into_owned();
        let mut next_port = 2302;
        for name in SERVERS {
            let (game_port, rcon_port) = game_ports(&mut next_port)?;
            let id = api
                .create_sim_server(&SimServer {
                    host: &host,
                    name,
                    game_port,
                    rcon_port,
                    executable: &executable,
                    rcon_password: &rcon_password,
                    knobs: &KNOBS,
                })
                .await?;
            self.servers.push((name.to_owned(), id.clone()));
            api.start_server(&id, Duration::from_secs(60))
                .await
                .map_err(|e| Failure(format!("starting {name}: {e}")))?;
            println!("Started the simulated Arma 3 server {name} (game port {game_port})");
        }

        self.print_ready(&admin_password);
        self.watch().await
    }

    fn print_ready(&self, admin_password: &str) {
        let http = self.args.listen;
        let logs = |p: Option<&Path>| p.map_or_else(String::new, |p| p.display().to_string());
        println!(
            "\nLanguard is running.\n\
             \x20 Console:  http://{http}/\n\
             \x20 API:      http://{http}/api/v1\n\
             \x20 Sign in:  admin / {admin_password}\n\
             \x20           (a one-time password: you must change it at first sign-in)\n\
             \x20 Link:     {link} (agent `local`, servers {servers})\n\
             \x20 Logs:     {ctl_log}\n\
             \x20           {agent_log}\n\
             Ctrl-C stops everything (the data folder {dir} stays).",
            link = self.args.link_listen,
            servers = SERVERS.join(", "),
            ctl_log = logs(self.controller.as_ref().map(|c| c.log.as_path())),
            agent_log = logs(self.agent.as_ref().map(|a| a.log.as_path())),
            dir = self.args.dir.display(),
        );
    }

    /// Waits for the controller or the agent to exit, which is a failure; forgets the
    /// exited one (and the API with the controller), so the shutdown does not call it.
    async fn watch(&mut self) -> Result<(), Failure> {
        enum Exited {
            Controller(String),
            Agent(String),
        }
        let (Some(ctl), Some(agent)) = (&mut self.controller, &mut self.agent) else {
            return Err(Failure("nothing to watch".into()));
        };
        let exited = tokio::select! {
            s = ctl.exited() => Exited::Controller(s),
            s = agent.exited() => Exited::Agent(s),
        };
        match exited {
            Exited::Controller(s) => {
                let log = self.controller.take().map(|c| c.log);
                self.api = None;
                Err(Failure(format!(
                    "the controller stopped ({s}); see {}",
                    log.unwrap_or_default().display()
                )))
            }
            Exited::Agent(s) => {
                let log = self.agent.take().map(|a| a.log);
                Err(Failure(format!(
                    "the agent stopped ({s}); see {}",
                    log.unwrap_or_default().display()
                )))
            }
        }
    }

    /// Stops what was started, in order: the servers through the API (while the agent
    /// still runs), the set-up account, the agent, any game still running, the controller.
    async fn shutdown(&mut self) {
        if let Some(api) = &self.api {
            if self.agent.is_some() && !self.servers.is_empty() {
                println!("Stopping the servers");
                let stops = self.servers.iter().map(|(name, id)| async move {
                    if let Err(e) = api.stop_server(id).await {
                        eprintln!("languard-demo: warning: stopping {name}: {e}");
                    }
                });
                // Bounded: a hung agent must not keep the demo from stopping.
                let all = futures_util::future::join_all(stops);
                if tokio::time::timeout(API_STOP_WITHIN, all).await.is_err() {
                    eprintln!("languard-demo: warning: the servers did not stop in time");
                }
            }
            if let Err(e) = api.disable_self().await {
                eprintln!("languard-demo: warning: disabling the account {SETUP_USER}: {e}");
            }
        }
        if let Some(agent) = &mut self.agent {
            println!("Stopping the agent");
            agent.stop().await;
        }
        let left = procs::stop_games(&procs::servers_dir(&self.agent_dir())).await;
        if left > 0 {
            println!("Stopped {left} game process(es) the agent left running");
        }
        if let Some(ctl) = &mut self.controller {
            println!("Stopping the controller");
            ctl.stop().await;
        }
        println!("Stopped. The data stays in {}", self.args.dir.display());
    }
}

/// A game port P with P..P+8 free (Arma uses P..=P+4, UDP and TCP) and an RCon port,
/// scanning up from `*next`; advances `*next` past the pair returned.
fn game_ports(next: &mut u16) -> Result<(u16, u16), Failure> {
    let free = |p: u16| {
        (p..p + 8).all(|q| {
            std::net::UdpSocket::bind(("0.0.0.0", q)).is_ok()
                && std::net::TcpListener::bind(("0.0.0.0", q)).is_ok()
        })
    };
    while *next < 60_000 {
        let p = *next;
        *next += 10;
        if free(p) {
            return Ok((p, p + 7));
        }
    }
    Err(Failure("no free game ports".into()))
}

/// 24 hex digits from the kernel's random source (the demo has no RNG crate).
fn random_secret() -> Result<String, Failure> {
    use std::io::Read;
    let mut bytes = [0u8; 12];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Failure(format!("cannot read /dev/urandom: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_and_fresh() {
        let (a, b) = (random_secret().unwrap(), random_secret().unwrap());
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn game_ports_skip_taken_ones_and_never_repeat() {
        let mut next = 41_000;
        let taken = std::net::UdpSocket::bind(("0.0.0.0", 41_003)).unwrap();
        let (g1, r1) = game_ports(&mut next).unwrap();
        let (g2, _) = game_ports(&mut next).unwrap();
        drop(taken);
        assert!(g1 >= 41_010, "41000..41008 holds a taken port: {g1}");
        assert_eq!(r1, g1 + 7);
        assert!(g2 >= g1 + 10);
    }
}
