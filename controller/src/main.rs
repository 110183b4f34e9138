//! `languard`: the controller binary.

use std::io::BufRead;

use clap::Parser;
use languard_controller::cli::{AdminCommand, Cli, CliRole, Command};
use languard_controller::config::{Config, Overrides};
use languard_controller::service::Ctx;
use languard_controller::store::Role;

fn read_password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok((line.trim_end_matches(['\r', '\n']).to_owned(), false))
    } else {
        Ok((languard_controller::auth::random_password(), true))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    languard_controller::telemetry::init_tracing();
    let cli = Cli::parse();
    let (listen, link_listen) = match &cli.command {
        Command::Serve {
            listen,
            link_listen,
        } => (listen.clone(), *link_listen),
        _ => (Vec::new(), None),
    };
    let over = Overrides {
        listen,
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone(),
        link_listen,
    };
    let config = Config::load(cli.config.as_deref(), &over)?;
    let sys = Ctx {
        principal: None,
        ip: None,
    };
    match cli.command {
        Command::Admin(AdminCommand::DumpConfig) => {
            out(&config.dump())?;
        }
        Command::Admin(AdminCommand::Openapi) => {
            let dir = tempfile_dir()?;
            let cfg = Config {
                data_dir: dir.clone(),
                database_url: Some("sqlite::memory:".into()),
                ..config
            };
            // The spec needs a store only to build the app: an empty in-memory SQLite.
            let store = languard_controller::store::connect("sqlite::memory:").await?;
            let app = languard_controller::with_store(
                store,
                cfg,
                &languard_controller::secrets::MasterKey::from_bytes([0u8; 32]),
            )?;
            let printed = out(&languard_controller::api::spec_yaml(app));
            let _ = std::fs::remove_dir_all(&dir);
            printed?;
        }
        Command::Admin(AdminCommand::CreateUser {
            username,
            role,
            password_stdin,
        }) => {
            let app = languard_controller::open(config).await?;
            let (pw, generated) = read_password(password_stdin)?;
            let role = match role {
                CliRole::Admin => Role::Admin,
                CliRole::Operator => Role::Operator,
                CliRole::Viewer => Role::Viewer,
            };
            let u = app
                .create_user(&sys, &username, &pw, role, generated)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("created user {} ({})", u.username, u.role);
            if generated {
                println!("password (change at first login): {pw}");
            }
        }
        Command::Admin(AdminCommand::ResetPassword {
            username,
            password_stdin,
        }) => {
            let app = languard_controller::open(config).await?;
            let u = app
                .store
                .get_user_by_username(&username)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no such user"))?;
            let (pw, generated) = read_password(password_stdin)?;
            app.reset_password(&sys, u.id, &pw, true)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if generated {
                println!(
                    "new password for {} (change at next login): {pw}",
                    u.username
                );
            } else {
                println!("password reset for {}", u.username);
            }
        }
        Command::Serve { .. } => {
            let app = languard_controller::open(config).await?;
            if let Some(pw) = app
                .bootstrap_admin()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
            {
                // Printed once, to the terminal only (not through the log pipeline).
                println!(
                    "Created user `admin` with password: {pw}\nIt must be changed at first login."
                );
            }
            languard_controller::serve(app).await?;
        }
    }
    Ok(())
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    match o.write_all(text.as_bytes()).and_then(|()| o.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("languard-openapi-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
