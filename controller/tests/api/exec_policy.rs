//! Which program a server runs is an admin's decision (issue 10, point 1).

use languard_controller::store::Role;
use serde_json::{Value, json};

use super::common::Harness;

fn update(exe: &str, revision: i64) -> Value {
    json!({"name": "main", "game": "arma3", "game_port": 2302, "rcon_port": 2312,
           "executable_path": exe, "revision": revision})
}

/// `updateServer` is an operator's operation and used to take any `executable_path`,
/// so an operator could point a server at another program on the host.
#[tokio::test]
async fn only_an_admin_changes_which_program_a_server_runs() {
    let h = Harness::new().await;
    let admin = h.user("ada", Role::Admin).await;
    let operator = h.user("otto", Role::Operator).await;
    let (_, sid) = h.server(&admin, 2302).await;
    let path = format!("/api/v1/servers/{sid}");

    let (s, p) = h
        .send(
            "PUT",
            &path,
            &operator,
            update("/tmp/evil/arma3server_x64", 1),
        )
        .await;
    assert_eq!(s, 403, "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("executable_path"),
        "{p}"
    );
    // Nothing changed.
    let (_, v) = h.get(&path, &admin).await;
    assert_eq!(
        (v["executable_path"].as_str(), v["revision"].as_i64()),
        (Some("/srv/arma3/arma3server_x64"), Some(1))
    );

    // An operator's update that keeps the program works.
    let (s, v) = h
        .send(
            "PUT",
            &path,
            &operator,
            update("/srv/arma3/arma3server_x64", 1),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["revision"], 2);

    // An admin may change it.
    let (s, v) = h
        .send("PUT", &path, &admin, update("/opt/a3/arma3server_x64", 2))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["executable_path"], "/opt/a3/arma3server_x64");

    // Creating a server (choosing its program) stays admin-only.
    let (s, _) = h
        .send(
            "POST",
            "/api/v1/servers",
            &operator,
            json!({"host_id": v["host_id"], "name": "two", "game": "arma3", "game_port": 2502,
                   "rcon_port": 2512, "executable_path": "/srv/arma3/arma3server_x64"}),
        )
        .await;
    assert_eq!(s, 403);
}
