//! `languard-demo`: Languard on this machine in one command — a controller on SQLite,
//! one enrolled local agent and two simulated Arma 3 servers, all real processes. For
//! trying the API and the console; Ctrl-C stops everything (the data folder stays).

use std::path::PathBuf;
use std::time::Duration;

use languard_e2e::fleet::{AgentProc, Controller};
use serde_json::json;

#[tokio::main]
async fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "demo-data".into()),
    );
    if dir.exists() {
        eprintln!("{} exists: remove it or pass another folder", dir.display());
        std::process::exit(2);
    }
    let ctl = Controller::start(&dir.join("controller"), None).await;
    let api = ctl.admin().await;
    let host = api.host("local").await;
    let mut agent = AgentProc::new(&dir.join("agent"));
    if let Err(e) = agent.enroll(ctl.link, &api.join_token(&host).await) {
        eprintln!("enrollment failed: {e}");
        std::process::exit(1);
    }
    agent.start();
    let knobs = [
        "-sim_players=3",
        "-sim_chat_interval_ms=4000",
        "-sim_rpt_spam=2",
    ];
    for name in ["altis-1", "tanoa-1"] {
        let id = api.sim_server(&host, name, &knobs).await;
        let mut started = false;
        for _ in 0..60 {
            let (s, _) = api.post(&format!("/servers/{id}/start"), json!({})).await;
            if s == 200 {
                started = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        println!(
            "server {name} ({id}) {}",
            if started {
                "started"
            } else {
                "not started (agent offline?)"
            }
        );
    }
    println!(
        "\nLanguard is running.\n  API:   http://{}/api/v1  (user `e2e`, password `e2e-password-1`)\n  Link:  {}\n  Logs:  {} and {}\nCtrl-C stops it.",
        ctl.http,
        ctl.link,
        ctl.log.display(),
        agent.log.display()
    );
    let _ = tokio::signal::ctrl_c().await;
    drop(agent);
    drop(ctl);
}
