//! Command line: `languard serve`, `languard admin …`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Languard controller.
#[derive(Debug, Parser)]
#[command(
    name = "languard",
    version,
    about = "Languard controller: fleet manager for game servers"
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, short, global = true, env = "LANGUARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data folder (database, master key).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL (sqlite://… or postgres://…).
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller.
    Serve {
        /// Listen address (repeatable).
        #[arg(long)]
        listen: Vec<SocketAddr>,
        /// Address of the agent link listener (mutual TLS).
        #[arg(long)]
        link_listen: Option<SocketAddr>,
    },
    /// Administration.
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// Roles for the CLI.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CliRole {
    /// Admin.
    Admin,
    /// Operator.
    Operator,
    /// Viewer.
    Viewer,
}

/// Admin subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user; the password is read from stdin (one line) or generated and printed.
    CreateUser {
        /// Username.
        username: String,
        /// Role.
        #[arg(long, value_enum, default_value = "viewer")]
        role: CliRole,
        /// Read the password from stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Reset a password (generated and printed, or read from stdin); must change at login.
    ResetPassword {
        /// Username.
        username: String,
        /// Read the password from stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Print the OpenAPI document (YAML).
    Openapi,
    /// Print the effective configuration (secrets masked).
    DumpConfig,
}
