//! Languard controller library: API, auth, storage and fleet management live here (see
//! DESIGN.md); the binary in `main.rs` only wires them up.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod fleet;
pub mod games;
pub mod http;
pub mod live;
pub mod secrets;
pub mod service;
pub mod store;
pub mod telemetry;

use std::sync::Arc;

use crate::config::Config;
use crate::secrets::MasterKey;
use crate::service::{App, AppState};

/// Opens the store, loads the master key and builds the state.
pub async fn open(config: Config) -> anyhow::Result<AppState> {
    std::fs::create_dir_all(&config.data_dir)?;
    protect_data_dir(&config)?;
    let env_key = std::env::var("LANGUARD_MASTER_KEY").ok();
    let key_file = config
        .master_key_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("master.key"));
    let store = store::connect(&config.effective_database_url()).await?;
    // Users or servers (whose configs hold sealed secrets) mean a key existed before.
    let existing_data = store.count_users().await? > 0 || store.count_servers(None).await? > 0;
    let master = MasterKey::load(env_key.as_deref(), &key_file, existing_data)?;
    Ok(App::new(store, config, &master)?)
}

/// Builds the state over an existing store (tests, benchmarks).
pub fn with_store(
    store: Arc<dyn store::Store>,
    config: Config,
    master: &MasterKey,
) -> anyhow::Result<AppState> {
    Ok(App::new(store, config, master)?)
}

/// Serves until Ctrl-C / SIGTERM on every configured address (and the metrics listener).
pub async fn serve(app: AppState) -> anyhow::Result<()> {
    let addrs = app.config.listen.clone();
    if addrs.is_empty() {
        anyhow::bail!("no listen address");
    }
    let mut api = Vec::new();
    for a in &addrs {
        api.push(
            tokio::net::TcpListener::bind(a)
                .await
                .map_err(|e| anyhow::anyhow!("listen on {a}: {e}"))?,
        );
    }
    let metrics = match app.config.metrics.listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .map_err(|e| anyhow::anyhow!("metrics listener on {a}: {e}"))?,
        ),
        None => None,
    };
    app.init_fleet()
        .await
        .map_err(|e| anyhow::anyhow!("fleet start-up: {e}"))?;
    let link = app.spawn_link().await?;
    let retention = service::retention::spawn(app.clone());
    tracing::info!(listen = ?addrs, metrics = ?app.config.metrics.listen, "Controller listening.");
    serve_on(app, api, metrics, shutdown_signal()).await;
    if let Some(job) = retention {
        job.abort();
    }
    if let Some((_, task)) = link {
        task.abort();
    }
    Ok(())
}

/// Serves the API on `api` and `/metrics` on `metrics` until `shutdown` completes (the
/// HTTP part of [`serve`]; tests call it with listeners on ephemeral ports).
pub async fn serve_on(
    app: AppState,
    api: Vec<tokio::net::TcpListener>,
    metrics: Option<tokio::net::TcpListener>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let limits = http::Limits::from_config(&app.config);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let signal = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let api_server = http::serve(
        api,
        api::build(app.clone()),
        limits.clone(),
        stopped(stop_rx.clone()),
    );
    let metrics_server = async {
        if let Some(l) = metrics {
            http::serve(
                vec![l],
                api::metrics_endpoint(app.clone()),
                limits.clone(),
                stopped(stop_rx.clone()),
            )
            .await;
        }
    };
    tokio::join!(signal, api_server, metrics_server);
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The data folder holds the master key, password hashes and encrypted secrets: only
/// the controller's user may read it. The default SQLite file is created 0600 before
/// SQLite opens it (its -wal and -shm files copy the database file's mode).
fn protect_data_dir(config: &config::Config) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700))?;
    if config.database_url.is_none() {
        let db = config.data_dir.join("languard.db");
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&db)?;
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
