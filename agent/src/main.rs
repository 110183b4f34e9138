//! `languard-agent`: the per-host agent. It keeps the servers whose specs it holds
//! running (adopting games that outlived a previous agent run) and records their
//! telemetry in its outbox until the controller link collects it.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use languard_agent::config::{AgentConfig, Overrides};
use languard_agent::host::Agent;
use languard_agent::link::enroll::{DEFAULT_TIMEOUT, EnrollOptions, default_hostname, enroll};
use languard_agent::link::{ControllerAddr, LinkOptions};
use languard_shared::wire::link::JoinTokenSecret;
use tracing::info;

/// Languard agent: runs and supervises game servers on this host.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file.
    #[arg(short, long, env = "LANGUARD_AGENT_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Folder for the agent's state (outbox, specs, run records).
    #[arg(long, env = "LANGUARD_AGENT_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Parent folder of the game servers' folders.
    #[arg(long, env = "LANGUARD_AGENT_SERVERS_DIR", global = true)]
    servers_dir: Option<PathBuf>,
    /// The controller's link address, host:port (default port 7443).
    #[arg(long, env = "LANGUARD_AGENT_CONTROLLER", global = true)]
    controller: Option<String>,
    /// Absolute path of an executable the agent may start, or of an install folder
    /// whose game executables it may start (repeatable; replaces the file's list).
    #[arg(
        long = "allow-executable",
        env = "LANGUARD_AGENT_ALLOWED_EXECUTABLES",
        value_delimiter = ',',
        global = true
    )]
    allowed_executables: Vec<PathBuf>,
    /// User the game processes run as when the agent runs as root (default
    /// languard-game).
    #[arg(long, env = "LANGUARD_AGENT_GAME_USER", global = true)]
    game_user: Option<String>,
    /// Let an agent that does not run as root start games under its own user.
    #[arg(
        long,
        env = "LANGUARD_AGENT_ALLOW_AGENT_USER",
        global = true,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    allow_agent_user: Option<bool>,
    /// Log filter, e.g. `info` or `languard_agent=debug`.
    #[arg(long, env = "LANGUARD_AGENT_LOG_LEVEL", global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent (the default).
    Run,
    /// Print the effective configuration and exit.
    DumpConfig,
    /// Enroll with a controller using a one-time join token (needs --controller), then
    /// exit; `run` connects with the identity this creates.
    Enroll {
        /// The join token from the console (also read from the environment, which
        /// keeps it out of the process list).
        #[arg(long, env = "LANGUARD_AGENT_JOIN_TOKEN", hide_env_values = true)]
        token: String,
        /// The name the console shows for this host (default: the OS host name).
        #[arg(long)]
        hostname: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let overrides = Overrides {
        data_dir: cli.data_dir,
        servers_dir: cli.servers_dir,
        controller: cli.controller,
        allowed_executables: (!cli.allowed_executables.is_empty())
            .then_some(cli.allowed_executables),
        game_user: cli.game_user,
        allow_agent_user: cli.allow_agent_user,
        log_level: cli.log_level,
    };
    let config = AgentConfig::load(cli.config.as_deref(), overrides)?;
    match cli.command.unwrap_or(Command::Run) {
        Command::DumpConfig => {
            print!("{}", config.to_toml());
            Ok(())
        }
        Command::Run => {
            init_tracing(&config, false)?;
            runtime()?.block_on(run(config))
        }
        Command::Enroll { token, hostname } => {
            init_tracing(&config, true)?;
            let Some(controller) = config.controller.as_deref() else {
                anyhow::bail!("enroll needs the controller's address: --controller host:port");
            };
            let options = EnrollOptions {
                controller: ControllerAddr::parse(controller)?,
                token: JoinTokenSecret(token),
                hostname: hostname.unwrap_or_else(default_hostname),
                data_dir: config.data_dir.clone(),
                timeout: DEFAULT_TIMEOUT,
            };
            let enrolled = runtime()?.block_on(enroll(options))?;
            println!("Enrolled as agent {}.", enrolled.agent_id);
            println!("Start (or restart) the agent to connect to the controller.");
            Ok(())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Logs go to stdout for `run` (a service's journal) and to stderr for one-shot
/// commands, whose stdout is their result.
fn init_tracing(config: &AgentConfig, stderr: bool) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .with_context(|| format!("invalid log_level {:?}", config.log_level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match (config.log_json, stderr) {
        (true, true) => builder.json().with_writer(std::io::stderr).init(),
        (true, false) => builder.json().init(),
        (false, true) => builder.with_writer(std::io::stderr).init(),
        (false, false) => builder.init(),
    }
    Ok(())
}

async fn run(config: AgentConfig) -> anyhow::Result<()> {
    info!(data_dir = %config.data_dir.display(), servers_dir = %config.servers_dir.display(), "Agent starting.");
    let agent = Agent::start(config.clone()).await?;
    let link = languard_agent::link::start(&agent, &config, LinkOptions::default());
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    info!("Agent stopping; game servers keep running and are adopted at the next start.");
    // The link first: running requests answer, then the connection closes cleanly.
    if let Some(link) = link {
        link.stop().await;
    }
    agent.shutdown().await;
    Ok(())
}
