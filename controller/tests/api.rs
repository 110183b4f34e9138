//! End-to-end API tests through the real HTTP stack.

#[path = "api/auth_hardening.rs"]
mod auth_hardening;
mod common;
#[path = "api/exec_policy.rs"]
mod exec_policy;
#[path = "api/http_hardening.rs"]
mod http_hardening;
#[path = "api/ip_privacy.rs"]
mod ip_privacy;

use common::{Harness, PW};
use languard_controller::store::Role;
use languard_shared::arma::config::ServerConfig;
use serde_json::{Value, json};

#[tokio::test]
async fn login_refresh_rotation_reuse_and_logout() {
    let h = Harness::new().await;
    h.user("alice", Role::Viewer).await;
    let pair = h.login("alice", PW).await;
    let rt1 = pair["refresh_token"].as_str().unwrap().to_owned();
    let (s, me) = h
        .get("/api/v1/auth/me", pair["access_token"].as_str().unwrap())
        .await;
    assert_eq!((s, me["username"].as_str()), (200, Some("alice")));
    let (s, p2, _) = h
        .call(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": rt1})),
        )
        .await;
    assert_eq!(s, 200);
    let rt2 = p2["refresh_token"].as_str().unwrap().to_owned();
    // Reuse of the spent token revokes the family, so rt2 dies too.
    let (s, _, _) = h
        .call(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": rt1})),
        )
        .await;
    assert_eq!(s, 401);
    let (s, _, _) = h
        .call(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": rt2})),
        )
        .await;
    assert_eq!(s, 401);
    let (s, _, _) = h
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "alice", "password": "wrong-password"})),
        )
        .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn bad_tokens_are_rejected() {
    let h = Harness::new().await;
    let t = h.user("bob", Role::Admin).await;
    let payload = t.split('.').nth(1).unwrap();
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    let mut forged = t.clone();
    forged.pop();
    forged.push(if t.ends_with('A') { 'B' } else { 'A' });
    for bad in [none.as_str(), forged.as_str(), "garbage", "lgd_notatoken"] {
        let (s, v) = h.get("/api/v1/servers", bad).await;
        assert_eq!(s, 401, "{bad}: {v}");
    }
    let (s, _, _) = h.call("GET", "/api/v1/servers", None, None).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn must_change_password_gate() {
    let h = Harness::new().await;
    let pw = h.app.bootstrap_admin().await.unwrap().unwrap();
    let pair = h.login("admin", &pw).await;
    let t = pair["access_token"].as_str().unwrap();
    let (s, v) = h.get("/api/v1/servers", t).await;
    assert_eq!(s, 403, "{v}");
    let (s, _) = h.get("/api/v1/auth/me", t).await;
    assert_eq!(s, 200);
    let (s, v) = h
        .send(
            "POST",
            "/api/v1/auth/password",
            t,
            json!({"current_password": pw, "new_password": "a-much-better-password"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = h
        .get("/api/v1/servers", v["access_token"].as_str().unwrap())
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn framework_errors_are_problem_json() {
    let h = Harness::with_config(|c| c.max_body_bytes = 4096).await;
    let t = h.user("carol", Role::Admin).await;
    let (s, v) = h.get("/api/v1/nope", &t).await;
    assert_eq!(s, 404);
    assert_eq!(v["status"], 404);
    assert_eq!(v["instance"], "/api/v1/nope");
    let (s, _, _) = h
        .call("PATCH", "/api/v1/hosts", Some(&t), Some(json!({})))
        .await;
    assert_eq!(s, 405);
    let r = h
        .cli
        .post("/api/v1/hosts")
        .header("Authorization", format!("Bearer {t}"))
        .content_type("application/json")
        .body("{not json")
        .send()
        .await;
    assert_eq!(r.0.status().as_u16(), 400);
    assert!(
        r.0.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );
    let big = "x".repeat(10_000);
    let r = h
        .cli
        .post("/api/v1/hosts")
        .header("Authorization", format!("Bearer {t}"))
        .header("content-length", big.len().to_string())
        .content_type("application/json")
        .body(big)
        .send()
        .await;
    assert_eq!(r.0.status().as_u16(), 413);
    let (s, v) = h
        .send(
            "POST",
            "/api/v1/hosts",
            &t,
            json!({"name": "", "os": "beos"}),
        )
        .await;
    assert_eq!(s, 422);
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "os"]);
}

#[tokio::test]
async fn servers_ports_and_concurrency() {
    let h = Harness::new().await;
    let t = h.user("dave", Role::Admin).await;
    let (hid, sid) = h.server(&t, 2302).await;
    // 2304 overlaps 2302..=2306.
    let (s, v) = h.send("POST", "/api/v1/servers", &t, json!({"host_id": hid, "name": "two", "game": "arma3", "game_port": 2304, "rcon_port": 2400, "executable_path": "/srv/arma3/arma3server_x64"})).await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = h.send("POST", "/api/v1/servers", &t, json!({"host_id": hid, "name": "three", "game": "arma3", "game_port": 2402, "rcon_port": 2312, "executable_path": "/srv/arma3/arma3server_x64"})).await;
    assert_eq!(s, 409, "rcon of the first server is 2312: {v}");
    let (s, v) = h.send("POST", "/api/v1/servers", &t, json!({"host_id": hid, "name": "four", "game": "arma3", "game_port": 2402, "rcon_port": 2404, "executable_path": "/bin/sh"})).await;
    assert_eq!(s, 422, "{v}");
    // The agent refuses relative executables and names outside its default allow-list.
    for exe in [
        "arma3server_x64",
        "/srv/arma3/arma3serverprofiling_x64",
        "C:/a3/arma3serverprofiling.exe",
    ] {
        let (s, v) = h.send("POST", "/api/v1/servers", &t, json!({"host_id": hid, "name": "five", "game": "arma3", "game_port": 2502, "rcon_port": 2510, "executable_path": exe})).await;
        assert_eq!(s, 422, "{exe}: {v}");
        assert_eq!(v["errors"][0]["field"], "executable_path", "{v}");
    }
    let (s, v) = h.send("POST", "/api/v1/servers", &t, json!({"host_id": hid, "name": "six", "game": "arma3", "game_port": 2602, "rcon_port": 2610, "executable_path": "C:\\a3\\arma3server_x64.exe"})).await;
    assert_eq!(s, 201, "{v}");
    let url = format!("/api/v1/servers/{sid}");
    let body = json!({"name": "renamed", "game": "arma3", "game_port": 2302, "rcon_port": 2312, "executable_path": "/srv/arma3/arma3server_x64", "revision": 1});
    let (s, v) = h.send("PUT", &url, &t, body.clone()).await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = h.send("PUT", &url, &t, body.clone()).await;
    assert_eq!(s, 409);
    let mut nb = body.clone();
    nb.as_object_mut().unwrap().remove("revision");
    let r = h
        .cli
        .put(&url)
        .header("Authorization", format!("Bearer {t}"))
        .header("If-Match", "\"1\"")
        .body_json(&nb)
        .send()
        .await;
    assert_eq!(r.0.status().as_u16(), 412);
    // `If-Match: *` matches whatever revision is current.
    let r = h
        .cli
        .put(&url)
        .header("Authorization", format!("Bearer {t}"))
        .header("If-Match", "*")
        .body_json(&nb)
        .send()
        .await;
    assert_eq!(r.0.status().as_u16(), 200);
    let (s, _) = h.send("PUT", &url, &t, nb).await;
    assert_eq!(s, 428);
}

#[tokio::test]
async fn config_sections_secrets_versions_diff_rollback_preview() {
    let h = Harness::new().await;
    let t = h.user("erin", Role::Admin).await;
    let (_, sid) = h.server(&t, 2302).await;
    let base = format!("/api/v1/servers/{sid}/config");
    let hostile = "My \"Server\"; class X { hacked = 1; };";
    let (s, v) = h.send("PUT", &format!("{base}/sections/server"), &t, json!({"revision": 0, "content": {"hostname": hostile, "password": "joinme", "password_admin": "s3cret-admin", "max_players": 40}})).await;
    assert_eq!(s, 200, "{v}");
    let text = v.to_string();
    assert!(
        !text.contains("s3cret-admin") && !text.contains("joinme"),
        "{text}"
    );
    let sec = &v["sections"][0]["content"];
    assert_eq!(sec["password_set"], true);
    assert_eq!(sec["server_command_password_set"], false);
    assert_eq!(sec["hostname"], hostile);
    // Update omitting secrets keeps them; a bad field is 422 with its path.
    let (s, v) = h
        .send(
            "PUT",
            &format!("{base}/sections/server"),
            &t,
            json!({"revision": 1, "content": {"hostname": "x", "max_players": 100000}}),
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(v["errors"][0]["field"], "server.max_players", "{v}");
    let (s, _) = h
        .send(
            "PUT",
            &format!("{base}/sections/server"),
            &t,
            json!({"revision": 1, "content": {"hostname": hostile, "max_players": 50}}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = h
        .send(
            "PUT",
            &format!("{base}/sections/rcon"),
            &t,
            json!({"revision": 2, "content": {"password": "Rcon123", "max_ping": 200}}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = h
        .send(
            "PUT",
            &format!("{base}/sections/launch"),
            &t,
            json!({"revision": 3, "content": {"mods": ["@cba"], "extra": ["-port=1"]}}),
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(v["errors"][0]["field"], "launch.extra[0]");
    // Preview: masked and re-parsable with the hostile hostname intact.
    let (s, files) = h.get(&format!("{base}/preview"), &t).await;
    assert_eq!(s, 200);
    let all = files.to_string();
    assert!(!all.contains("s3cret-admin") && !all.contains("Rcon123") && !all.contains("joinme"));
    let cfg = files
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "server.cfg")
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let (parsed, _) = ServerConfig::parse(&cfg).unwrap();
    assert_eq!(parsed.hostname, hostile);
    assert_eq!(parsed.max_players, Some(50));
    // Real files (admin) carry the secrets.
    let (_, real) = h.get(&format!("{base}/files"), &t).await;
    assert!(real.to_string().contains("s3cret-admin") && real.to_string().contains("Rcon123"));
    // Versions, diff, rollback.
    let (_, versions) = h.get(&format!("{base}/versions"), &t).await;
    assert_eq!(versions.as_array().unwrap().len(), 3);
    let (_, diff) = h.get(&format!("{base}/diff?from=1&to=2"), &t).await;
    let paths: Vec<&str> = diff
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"server.max_players"), "{diff}");
    let (s, v) = h
        .send(
            "POST",
            &format!("{base}/rollback"),
            &t,
            json!({"version": 1, "revision": 3}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["revision"], 4);
    let (_, cur) = h.get(&base, &t).await;
    let server = cur["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["section"] == "server")
        .unwrap();
    assert_eq!(server["content"]["max_players"], 40);
    // Import.
    let (s, v) = h.send("POST", &format!("{base}/import"), &t, json!({"revision": 4, "files": [{"name": "server.cfg", "content": "hostname = \"Imported\";\npassword = \"pw\";\nfooBar = 3;\n"}]})).await;
    assert_eq!(s, 200, "{v}");
    assert!(!v["warnings"].as_array().unwrap().is_empty());
    // Secrets the file does not set keep their stored values; the file's own win.
    assert!(v.to_string().contains("password_admin"), "{v}");
    let (_, real) = h.get(&format!("{base}/files"), &t).await;
    let real = real.to_string();
    assert!(real.contains("s3cret-admin"), "{real}");
    assert!(
        real.contains("Imported") && !real.contains("joinme"),
        "{real}"
    );
    let (s, v) = h
        .send(
            "POST",
            &format!("{base}/import"),
            &t,
            json!({"revision": 5, "files": [{"name": "server.cfg", "content": "hostname = \"broken"}]}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
}

#[tokio::test]
async fn hundred_parallel_edits_lose_nothing() {
    let h = std::sync::Arc::new(Harness::new().await);
    let t = h.user("frank", Role::Admin).await;
    let (_, sid) = h.server(&t, 2302).await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (h, t, sid) = (h.clone(), t.clone(), sid.clone());
        tasks.push(tokio::spawn(async move {
            let base = format!("/api/v1/servers/{sid}/config");
            loop {
                let (_, cur) = h.get(&base, &t).await;
                let rev = cur["revision"].as_i64().unwrap();
                let motd: Vec<String> = cur["sections"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|s| s["section"] == "server")
                    .and_then(|s| s["content"]["motd"].as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect();
                let mut motd = motd;
                motd.push(format!("edit {i}"));
                let (s, _) = h
                    .send(
                        "PUT",
                        &format!("{base}/sections/server"),
                        &t,
                        json!({"revision": rev, "content": {"hostname": "h", "motd": motd}}),
                    )
                    .await;
                if s == 200 {
                    break;
                }
                assert_eq!(s, 409);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (_, cur) = h.get(&format!("/api/v1/servers/{sid}/config"), &t).await;
    assert_eq!(cur["revision"], 100);
    let motd = cur["sections"][0]["content"]["motd"].as_array().unwrap();
    assert_eq!(motd.len(), 100);
}

#[tokio::test]
async fn login_throttling_and_api_tokens_and_audit() {
    let h = Harness::with_config(|c| {
        c.login_throttle.per_account = 3;
    })
    .await;
    let t = h.user("gina", Role::Operator).await;
    for _ in 0..3 {
        let (s, _, _) = h
            .call(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(json!({"username": "gina", "password": "nope-nope-nope"})),
            )
            .await;
        assert_eq!(s, 401);
    }
    let (s, v, r) = h
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "gina", "password": PW})),
        )
        .await;
    assert_eq!(s, 429, "{v}");
    assert!(r.0.headers().get("retry-after").is_some());
    // API tokens: capped at own role, shown once, revocable.
    let (s, _) = h
        .send(
            "POST",
            "/api/v1/tokens",
            &t,
            json!({"name": "ci", "role": "admin"}),
        )
        .await;
    assert_eq!(s, 422);
    let (s, v) = h
        .send(
            "POST",
            "/api/v1/tokens",
            &t,
            json!({"name": "ci", "role": "viewer"}),
        )
        .await;
    assert_eq!(s, 201);
    let secret = v["token"].as_str().unwrap().to_owned();
    let (s, _) = h.get("/api/v1/servers", &secret).await;
    assert_eq!(s, 200);
    let (s, _) = h
        .send(
            "PUT",
            &format!("/api/v1/servers/{}", uuid::Uuid::new_v4()),
            &secret,
            json!({}),
        )
        .await;
    assert_eq!(s, 403);
    let (_, list) = h.get("/api/v1/tokens", &t).await;
    assert!(!list.to_string().contains(&secret));
    let (s, _, _) = h
        .call(
            "DELETE",
            &format!("/api/v1/tokens/{}", v["info"]["id"].as_str().unwrap()),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, _) = h.get("/api/v1/servers", &secret).await;
    assert_eq!(s, 401);
    let admin = h.user("root", Role::Admin).await;
    let (s, page) = h.get("/api/v1/audit?action=api_token.create", &admin).await;
    assert_eq!(s, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (s, health, _) = h.call("GET", "/api/v1/system/health", None, None).await;
    assert_eq!((s, health["status"].as_str()), (200, Some("ok")));
    let r = h.cli.get("/metrics").send().await;
    r.assert_status(poem::http::StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn rollback_removes_sections_added_after_that_version() {
    let h = Harness::new().await;
    let t = h.user("rolf", Role::Admin).await;
    let (_, sid) = h.server(&t, 2402).await;
    let base = format!("/api/v1/servers/{sid}/config");
    let put = |section: &str, rev: i64, content: Value| {
        let (h, t, path) = (&h, &t, format!("{base}/sections/{section}"));
        async move {
            let (s, v) = h
                .send(
                    "PUT",
                    &path,
                    t,
                    json!({"revision": rev, "content": content}),
                )
                .await;
            assert_eq!(s, 200, "{v}");
        }
    };
    put("server", 0, json!({"hostname": "one", "max_players": 10})).await;
    put("rcon", 1, json!({"password": "Rcon123", "max_ping": 200})).await;
    put("launch", 2, json!({"mods": ["@cba"]})).await;
    put("server", 3, json!({"hostname": "two", "max_players": 20})).await;
    let sections = |cur: &Value| -> Vec<String> {
        let mut v: Vec<String> = cur["sections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["section"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let (_, cur) = h.get(&base, &t).await;
    assert_eq!(sections(&cur), ["launch", "rcon", "server"]);

    // Back to version 2 (server + rcon): launch, added in version 3, goes.
    let (s, v) = h
        .send(
            "POST",
            &format!("{base}/rollback"),
            &t,
            json!({"version": 2, "revision": 4}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["revision"], 5);
    let (_, cur) = h.get(&base, &t).await;
    assert_eq!(cur["revision"], 5);
    assert_eq!(sections(&cur), ["rcon", "server"]);
    let server = cur["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["section"] == "server")
        .unwrap();
    assert_eq!(server["content"]["hostname"], "one");
    // The RCon secret came back with version 2 (real files carry it).
    let (_, real) = h.get(&format!("{base}/files"), &t).await;
    assert!(real.to_string().contains("Rcon123"), "{real}");
    // The new version's snapshot matches: diff 2 -> 5 is empty, 4 -> 5 names launch.
    let (s, diff) = h.get(&format!("{base}/diff?from=2&to=5"), &t).await;
    assert_eq!(s, 200, "{diff}");
    assert!(diff.as_array().unwrap().is_empty(), "{diff}");
    let (_, diff) = h.get(&format!("{base}/diff?from=4&to=5"), &t).await;
    assert!(diff.to_string().contains("launch"), "{diff}");

    // Back to version 1 (server only): rcon goes too; a stale revision is refused.
    let (s, _) = h
        .send(
            "POST",
            &format!("{base}/rollback"),
            &t,
            json!({"version": 1, "revision": 4}),
        )
        .await;
    assert_eq!(s, 409);
    let (s, v) = h
        .send(
            "POST",
            &format!("{base}/rollback"),
            &t,
            json!({"version": 1, "revision": 5}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, cur) = h.get(&base, &t).await;
    assert_eq!(sections(&cur), ["server"]);
    let (_, real) = h.get(&format!("{base}/files"), &t).await;
    assert!(!real.to_string().contains("Rcon123"), "{real}");
}

#[tokio::test]
async fn server_list_reflects_writes_at_once() {
    // The list is served from a short-lived cache; writes through this controller must
    // show in the next read (create, update, config save, delete).
    let h = Harness::new().await;
    let t = h.user("lisa", Role::Admin).await;
    let (s, v) = h.get("/api/v1/servers", &t).await;
    assert_eq!((s, v), (200, json!([])));
    let (hid, sid) = h.server(&t, 2302).await;
    let (_, v) = h.get("/api/v1/servers", &t).await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["revision"], 1);
    let (_, one) = h.get(&format!("/api/v1/servers?host_id={hid}"), &t).await;
    assert_eq!(one, v);
    let (s, _) = h.send("PUT", &format!("/api/v1/servers/{sid}"), &t, json!({"name": "renamed", "game": "arma3", "game_port": 2402, "rcon_port": 2412, "executable_path": "/srv/arma3/arma3server_x64", "revision": 1})).await;
    assert_eq!(s, 200);
    let (_, v) = h.get("/api/v1/servers", &t).await;
    assert_eq!(
        (v[0]["name"].as_str(), v[0]["revision"].as_i64()),
        (Some("renamed"), Some(2))
    );
    assert_eq!(v[0]["reserved_ports"][0], 2402);
    let (s, _) = h
        .send(
            "PUT",
            &format!("/api/v1/servers/{sid}/config/sections/basic"),
            &t,
            json!({"revision": 0, "content": {}}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, v) = h.get("/api/v1/servers", &t).await;
    assert_eq!(v[0]["config_revision"], 1);
    let (s, _, _) = h
        .call("DELETE", &format!("/api/v1/servers/{sid}"), Some(&t), None)
        .await;
    assert_eq!(s, 204);
    let (_, v) = h.get("/api/v1/servers", &t).await;
    assert_eq!(v, json!([]));
}

#[tokio::test]
async fn cors_is_off_by_default_and_allows_only_listed_origins_when_on() {
    let off = Harness::new().await;
    let r = off
        .cli
        .get("/api/v1/system/health")
        .header("Origin", "https://console.example")
        .send()
        .await;
    r.assert_status_is_ok();
    assert!(r.0.headers().get("access-control-allow-origin").is_none());
    let pre = off
        .cli
        .request(poem::http::Method::OPTIONS, "/api/v1/servers")
        .header("Origin", "https://console.example")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await;
    assert!(pre.0.headers().get("access-control-allow-origin").is_none());

    let on = Harness::with_config(|c| {
        c.cors.enabled = true;
        c.cors.allow_origins = vec!["https://console.example".into()];
    })
    .await;
    let r = on
        .cli
        .get("/api/v1/system/health")
        .header("Origin", "https://console.example")
        .send()
        .await;
    r.assert_status_is_ok();
    assert_eq!(
        r.0.headers().get("access-control-allow-origin").unwrap(),
        "https://console.example"
    );
    let pre = on
        .cli
        .request(poem::http::Method::OPTIONS, "/api/v1/servers")
        .header("Origin", "https://console.example")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await;
    assert!(pre.0.status().is_success(), "{}", pre.0.status());
    assert_eq!(
        pre.0.headers().get("access-control-allow-origin").unwrap(),
        "https://console.example"
    );
    // Another origin gets no grant.
    let r = on
        .cli
        .get("/api/v1/system/health")
        .header("Origin", "https://evil.example")
        .send()
        .await;
    assert!(r.0.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn retention_job_uses_the_configured_days() {
    use languard_controller::store::{ActorKind, AuditQuery, NewAuditEvent, now};
    let h = Harness::with_config(|c| c.retention.audit_days = 10).await;
    let t = now();
    for days in [11, 9] {
        h.app
            .store
            .insert_audit(NewAuditEvent {
                ts: Some(t - time::Duration::days(days)),
                actor_user_id: None,
                actor_kind: ActorKind::System,
                action: "test.retention".into(),
                target_kind: None,
                target_id: None,
                ip: None,
                details: json!({}),
            })
            .await
            .unwrap();
    }
    let report = h.app.prune_retention(t).await.unwrap().unwrap();
    assert_eq!(report.audit, 1);
    let left = h
        .app
        .store
        .query_audit(AuditQuery {
            action: Some("test.retention".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(left.items.len(), 1);
    assert_eq!(left.items[0].ts, t - time::Duration::days(9));
}

#[tokio::test]
async fn access_tokens_die_on_logout_role_change_disable_delete_and_password_change() {
    let h = Harness::new().await;
    let admin = h.user("boss", Role::Admin).await;
    // Logout: the access token used for it is refused afterwards.
    let t = h.user("lou", Role::Operator).await;
    assert_eq!(h.get("/api/v1/auth/me", &t).await.0, 200);
    let (s, _) = h.send("POST", "/api/v1/auth/logout", &t, json!({})).await;
    assert_eq!(s, 204);
    assert_eq!(h.get("/api/v1/auth/me", &t).await.0, 401);
    // A fresh login works again.
    let t = h.login("lou", PW).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(h.get("/api/v1/servers", &t).await.0, 200);
    let (_, me) = h.get("/api/v1/auth/me", &t).await;
    let id = me["id"].as_str().unwrap().to_owned();
    // Role change.
    let (s, v) = h
        .send(
            "PATCH",
            &format!("/api/v1/users/{id}"),
            &admin,
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h.get("/api/v1/servers", &t).await.0, 401);
    // Disable.
    let t = h.login("lou", PW).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(h.get("/api/v1/servers", &t).await.0, 200);
    let (s, _) = h
        .send(
            "PATCH",
            &format!("/api/v1/users/{id}"),
            &admin,
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(h.get("/api/v1/servers", &t).await.0, 401);
    // Password change: the old token dies, the returned one works.
    let t = h.user("pat", Role::Viewer).await;
    let (s, pair) = h
        .send(
            "POST",
            "/api/v1/auth/password",
            &t,
            json!({"current_password": PW, "new_password": "another-long-password"}),
        )
        .await;
    assert_eq!(s, 200, "{pair}");
    assert_eq!(h.get("/api/v1/auth/me", &t).await.0, 401);
    let fresh = pair["access_token"].as_str().unwrap();
    let (_, me) = h.get("/api/v1/auth/me", fresh).await;
    let pat = me["id"].as_str().unwrap().to_owned();
    // Delete.
    let (s, _, _) = h
        .call(
            "DELETE",
            &format!("/api/v1/users/{pat}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(h.get("/api/v1/auth/me", fresh).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_password_logins_are_throttled() {
    let h = std::sync::Arc::new(
        Harness::with_config(|c| {
            c.login_throttle.per_account = 3;
        })
        .await,
    );
    h.user("vic", Role::Viewer).await;
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            h.call(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(json!({"username": "vic", "password": "wrong-wrong-wrong"})),
            )
            .await
            .0
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    let verified = codes.iter().filter(|c| **c == 401).count();
    let throttled = codes.iter().filter(|c| **c == 429).count();
    assert_eq!((verified, throttled), (3, 9), "{codes:?}");
}

#[tokio::test]
async fn login_failed_audit_never_stores_an_unknown_username() {
    let h = Harness::new().await;
    let admin = h.user("auditor", Role::Admin).await;
    for name in ["auditor", "my-secret-password-typed-as-name"] {
        let (s, _, _) = h
            .call(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(json!({"username": name, "password": "wrong-wrong-wrong"})),
            )
            .await;
        assert_eq!(s, 401);
    }
    let (s, page) = h
        .get("/api/v1/audit?action=auth.login_failed", &admin)
        .await;
    assert_eq!(s, 200);
    let text = page.to_string();
    assert_eq!(page["items"].as_array().unwrap().len(), 2, "{text}");
    assert!(!text.contains("my-secret-password-typed-as-name"), "{text}");
    assert!(text.contains("unknown_user"), "{text}");
    assert!(text.contains("auditor"), "{text}");
}

#[tokio::test]
async fn missing_master_key_with_existing_users_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = languard_controller::config::Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let app = languard_controller::open(cfg.clone()).await.unwrap();
    assert!(app.bootstrap_admin().await.unwrap().is_some());
    drop(app);
    std::fs::remove_file(dir.path().join("master.key")).unwrap();
    let err = languard_controller::open(cfg)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("LANGUARD_MASTER_KEY"), "{err}");
    assert!(!dir.path().join("master.key").exists());
}

/// The fleet endpoints without a connected agent: join tokens, revocation, operations
/// refused with clear errors, telemetry queries validated, WebSocket tickets single-use.
#[tokio::test]
async fn fleet_endpoints_validate_input_and_report_offline_hosts() {
    let h = Harness::new().await;
    let admin = h.user("root", Role::Admin).await;
    let (host, server) = h.server(&admin, 2302).await;

    // Join tokens: shown once, never listed; bad lifetimes refused.
    let (s, t) = h
        .send(
            "POST",
            &format!("/api/v1/hosts/{host}/join-tokens"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let token = t["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("lgj_") && token.ends_with(t["ca_fingerprint"].as_str().unwrap()));
    assert!(t["command"].as_str().unwrap().contains(&token));
    let (s, list) = h
        .get(&format!("/api/v1/hosts/{host}/join-tokens"), &admin)
        .await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(
        !list.to_string().contains(&token[4..40]),
        "a listed token has no secret"
    );
    for ttl in [0, 2_592_001u64] {
        let (s, _) = h
            .send(
                "POST",
                &format!("/api/v1/hosts/{host}/join-tokens"),
                &admin,
                json!({"ttl_secs": ttl}),
            )
            .await;
        assert_eq!(s, 400, "ttl {ttl}");
    }
    let missing = uuid::Uuid::new_v4();
    let (s, _) = h
        .send(
            "POST",
            &format!("/api/v1/hosts/{missing}/join-tokens"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(s, 404);
    let (_, list) = h
        .get(&format!("/api/v1/hosts/{host}/join-tokens"), &admin)
        .await;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "refused requests stored nothing"
    );

    // Operations: the config must be complete, then the host must be online.
    let (s, p) = h
        .send(
            "POST",
            &format!("/api/v1/servers/{server}/start"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["errors"][0]["field"], "rcon.password");
    let (s, p) = h
        .send(
            "PUT",
            &format!("/api/v1/servers/{server}/config/sections/rcon"),
            &admin,
            json!({"content": {"password": "Secret123"}, "revision": 0}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    let (s, p) = h
        .send(
            "POST",
            &format!("/api/v1/servers/{server}/start"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(s, 503, "{p}");
    assert_eq!(p["type"], "https://languard.dev/problems/host-offline");
    let (_, srv) = h.get(&format!("/api/v1/servers/{server}"), &admin).await;
    assert_eq!(
        srv["desired_running"], false,
        "a refused start changes nothing"
    );
    let (s, st) = h
        .get(&format!("/api/v1/servers/{server}/status"), &admin)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        (st["state"].as_str(), st["host_online"].as_bool()),
        (Some("unknown"), Some(false))
    );
    for body in [
        json!({"reason": "no target"}),
        json!({"player": "1", "account": "0123456789abcdef0123456789abcdef"}),
    ] {
        let (s, p) = h
            .send(
                "POST",
                &format!("/api/v1/servers/{server}/ban"),
                &admin,
                body,
            )
            .await;
        assert_eq!(s, 422, "{p}");
    }
    let (s, _) = h
        .send(
            "POST",
            &format!("/api/v1/servers/{server}/console"),
            &admin,
            json!({"command": ""}),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = h
        .send(
            "POST",
            &format!("/api/v1/servers/{server}/say"),
            &admin,
            json!({"message": "x".repeat(401)}),
        )
        .await;
    assert_eq!(s, 400);

    // Telemetry queries: empty results, bad cursors and limits refused.
    let (s, page) = h
        .get(
            &format!("/api/v1/servers/{server}/logs?q=abc&level=warn"),
            &admin,
        )
        .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["items"], json!([]));
    for bad in [
        "before=nonsense",
        "before=1.x",
        "limit=0",
        "limit=5001",
        "level=loud",
    ] {
        let (s, p) = h
            .get(&format!("/api/v1/servers/{server}/logs?{bad}"), &admin)
            .await;
        assert!(s == 400 || s == 422, "{bad}: {s} {p}");
    }
    for res in ["raw", "1m", "5m", "1h"] {
        let (s, v) = h
            .get(
                &format!("/api/v1/servers/{server}/metrics?resolution={res}"),
                &admin,
            )
            .await;
        assert_eq!((s, v), (200, json!([])), "{res}");
    }
    let (s, _) = h
        .get(
            &format!("/api/v1/servers/{server}/metrics?resolution=2m"),
            &admin,
        )
        .await;
    assert_eq!(s, 400);
    let (s, v) = h
        .get(
            &format!("/api/v1/servers/{server}/events?kind=chat,status"),
            &admin,
        )
        .await;
    assert_eq!((s, v), (200, json!([])));
    let (s, v) = h
        .get(
            &format!("/api/v1/servers/{server}/sessions?open=true"),
            &admin,
        )
        .await;
    assert_eq!((s, v), (200, json!([])));
    let (s, _) = h
        .get(&format!("/api/v1/servers/{missing}/logs"), &admin)
        .await;
    assert_eq!(s, 404);

    // WebSocket tickets: a bad ticket is refused before any upgrade; a ticket works once.
    let ws = |ticket: String| {
        h.cli
            .get(format!("/api/v1/ws?ticket={ticket}"))
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .send()
    };
    assert_eq!(ws("lgw_forged".into()).await.0.status().as_u16(), 401);
    let (s, t) = h
        .send("POST", "/api/v1/live/tickets", &admin, json!({}))
        .await;
    assert_eq!(s, 200);
    let ticket = t["ticket"].as_str().unwrap().to_owned();
    let first = ws(ticket.clone()).await.0.status().as_u16();
    assert_ne!(first, 401, "a fresh ticket is accepted");
    assert_eq!(
        ws(ticket).await.0.status().as_u16(),
        401,
        "a ticket works once"
    );

    // Revocation: the host reads revoked, and stays so.
    let (s, v) = h
        .send(
            "POST",
            &format!("/api/v1/hosts/{host}/revoke"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "revoked");
    let (s, _) = h
        .send(
            "POST",
            &format!("/api/v1/hosts/{missing}/revoke"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(s, 404);
    let (_, audit) = h.get("/api/v1/audit?action=host.revoke", &admin).await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1);
}

/// Operations are checked against the server's game before anything goes to the agent:
/// with the host offline, what the game lacks is a 422 naming game and operation, what it
/// has is the 503 of the offline host. The raw console moved to `/console`.
#[tokio::test]
async fn operations_the_game_lacks_are_refused_before_the_agent_is_asked() {
    let h = Harness::new().await;
    let admin = h.user("root", Role::Admin).await;
    let operator = h.user("op", Role::Operator).await;
    let (_, server) = h.server(&admin, 2302).await;
    let url = |op: &str| format!("/api/v1/servers/{server}/{op}");

    let (s, p) = h.send("POST", &url("save"), &operator, json!({})).await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(
        p["type"],
        "https://languard.dev/problems/unsupported-operation"
    );
    assert_eq!(p["detail"], "Arma 3 servers have no save operation");
    let (_, audit) = h.get("/api/v1/audit?action=server.save", &admin).await;
    assert_eq!(audit["items"], json!([]), "nothing was attempted");

    for (op, body) in [
        ("lock", json!({})),
        ("unlock", json!({})),
        ("announce", json!({"message": "restart in 5"})),
        ("say", json!({"message": "hi", "player": "3"})),
        ("kick", json!({"player": "3", "reason": "afk"})),
        ("ban", json!({"address": "203.0.113.9", "minutes": 60})),
        ("unban", json!({"ban": "0"})),
        ("shutdown", json!({"countdown_secs": 30, "message": "bye"})),
        (
            "mission",
            json!({"name": "co10_Escape.Altis", "difficulty": "Regular"}),
        ),
    ] {
        let (s, p) = h.send("POST", &url(op), &operator, body).await;
        assert_eq!(s, 503, "{op}: {p}");
        assert_eq!(
            p["type"], "https://languard.dev/problems/host-offline",
            "{op}"
        );
    }
    let (s, p) = h.get(&url("players"), &operator).await;
    assert_eq!(
        (s, p["type"].as_str()),
        (503, Some("https://languard.dev/problems/host-offline"))
    );

    // Text that would forge a second command line is refused with its field.
    let (s, p) = h
        .send(
            "POST",
            &url("kick"),
            &operator,
            json!({"player": "3", "reason": "x\nsay -1 forged"}),
        )
        .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["errors"][0]["field"], "reason");

    // The console: admin only, at its new path.
    let (s, _) = h
        .send(
            "POST",
            &url("console"),
            &operator,
            json!({"command": "players"}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, p) = h
        .send(
            "POST",
            &url("console"),
            &admin,
            json!({"command": "players"}),
        )
        .await;
    assert_eq!(s, 503, "{p}");
    let (s, _) = h
        .send("POST", &url("rcon"), &admin, json!({"command": "players"}))
        .await;
    assert_eq!(s, 404, "the old path is gone");
    let (s, _) = h
        .send(
            "POST",
            &url("shutdown"),
            &operator,
            json!({"countdown_secs": 3601}),
        )
        .await;
    assert_eq!(s, 400);
}

/// `GET /games` lists what each game Languard runs offers; a game without a registry
/// entry cannot get servers; sections are the server's game's.
#[tokio::test]
async fn games_capabilities_and_sections_follow_the_registry() {
    let h = Harness::new().await;
    let admin = h.user("root", Role::Admin).await;
    let viewer = h.user("view", Role::Viewer).await;
    let (s, games) = h.get("/api/v1/games", &viewer).await;
    assert_eq!(s, 200, "{games}");
    let list = games.as_array().unwrap();
    assert_eq!(list.len(), 1, "{games}");
    let arma = &list[0];
    assert_eq!(
        (arma["game"].as_str(), arma["title"].as_str()),
        (Some("arma3"), Some("Arma 3"))
    );
    let ops: Vec<&str> = arma["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    assert!(
        ops.contains(&"console") && ops.contains(&"ban_address"),
        "{ops:?}"
    );
    assert!(!ops.contains(&"save"), "{ops:?}");
    let sections: Vec<&str> = arma["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(sections, ["server", "basic", "profile", "launch", "rcon"]);
    assert_eq!(arma["sections"][4]["secret_fields"], json!(["password"]));
    assert_eq!(arma["importable_files"], json!(["server.cfg", "basic.cfg"]));
    assert!(
        arma["executables"]
            .as_array()
            .unwrap()
            .contains(&json!("arma3server_x64"))
    );

    let (hid, server) = h.server(&admin, 2302).await;
    let (s, p) = h
        .send("POST", "/api/v1/servers", &admin, json!({"host_id": hid, "name": "pal", "game": "palworld", "game_port": 8211, "rcon_port": 25575, "executable_path": "/srv/pal/PalServer.sh"}))
        .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["type"], "https://languard.dev/problems/unsupported-game");
    assert_eq!(p["detail"], "Languard cannot run Palworld servers yet");
    let (s, _) = h
        .send("POST", "/api/v1/servers", &admin, json!({"host_id": hid, "name": "x", "game": "minecraft", "game_port": 25565, "rcon_port": 25575, "executable_path": "/srv/x"}))
        .await;
    assert_eq!(s, 400, "a game the wire does not know is malformed");

    let base = format!("/api/v1/servers/{server}/config");
    let (s, p) = h
        .send(
            "PUT",
            &format!("{base}/sections/mission"),
            &admin,
            json!({"revision": 0, "content": {}}),
        )
        .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["errors"][0]["field"], "section");
    let msg = p["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("Arma 3") && msg.contains("\"mission\"") && msg.contains("rcon"),
        "{msg}"
    );
    let (_, cur) = h.get(&base, &admin).await;
    assert_eq!(cur["revision"], 0, "nothing stored");
    let (s, p) = h
        .send(
            "POST",
            &format!("{base}/import"),
            &admin,
            json!({"revision": 0, "files": [{"name": "mission.sqm", "content": "x"}]}),
        )
        .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["errors"][0]["field"], "files.mission.sqm");
    let (s, p) = h
        .send(
            "POST",
            &format!("{base}/import"),
            &admin,
            json!({"revision": 0, "files": []}),
        )
        .await;
    assert_eq!(s, 422, "{p}");
}

/// The restart policy is the wire's, field for field, with its limits.
#[tokio::test]
async fn restart_policy_mirrors_the_wire() {
    let h = Harness::new().await;
    let admin = h.user("root", Role::Admin).await;
    let (hid, sid) = h.server(&admin, 2302).await;
    let (_, v) = h.get(&format!("/api/v1/servers/{sid}"), &admin).await;
    assert_eq!(
        v["restart_policy"],
        json!({"mode": "on_crash", "crash_loop_max": 5, "crash_loop_window_secs": 600, "backoff_initial_ms": 2000, "backoff_max_ms": 60000})
    );
    let spec = |name: &str, port: i64, policy: Value| json!({"host_id": hid, "name": name, "game": "arma3", "game_port": port, "rcon_port": port + 10, "executable_path": "/srv/arma3/arma3server_x64", "restart_policy": policy});
    let (s, v) = h
        .send(
            "POST",
            "/api/v1/servers",
            &admin,
            spec(
                "two",
                2402,
                json!({"mode": "always", "crash_loop_max": 0, "backoff_max_ms": 5000}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        v["restart_policy"],
        json!({"mode": "always", "crash_loop_max": 0, "crash_loop_window_secs": 600, "backoff_initial_ms": 2000, "backoff_max_ms": 5000})
    );
    for bad in [
        json!({"mode": "on-failure"}),
        json!({"mode": "never", "backoff_initial_ms": 86_400_001u64}),
        json!({"mode": "never", "crash_loop_window_secs": 86_401}),
    ] {
        let (s, v) = h
            .send(
                "POST",
                "/api/v1/servers",
                &admin,
                spec("three", 2502, bad.clone()),
            )
            .await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
}
