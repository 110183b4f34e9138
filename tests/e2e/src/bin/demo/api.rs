//! The few REST calls the demo makes, as the demo's own set-up account. Unlike the test
//! harness's client, every failure is returned as a one-line [`Failure`], never a panic.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Failure;

/// A signed-in session.
#[derive(Clone)]
pub struct Api {
    base: String,
    token: String,
    user_id: String,
    http: reqwest::Client,
}

/// What the demo needs to create one simulated server.
pub struct SimServer<'a> {
    pub host: &'a str,
    pub name: &'a str,
    pub game_port: u16,
    pub rcon_port: u16,
    pub executable: &'a str,
    pub rcon_password: &'a str,
    pub knobs: &'a [&'a str],
}

impl Api {
    /// Signs in; `base` is `http://host:port`.
    pub async fn login(base: &str, user: &str, password: &str) -> Result<Self, Failure> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| Failure(format!("HTTP client: {e}")))?;
        let mut api = Api {
            base: base.to_owned(),
            token: String::new(),
            user_id: String::new(),
            http,
        };
        let r = api
            .expect(
                reqwest::Method::POST,
                "/auth/login",
                Some(json!({"username": user, "password": password})),
            )
            .await?;
        match (r["access_token"].as_str(), r["user"]["id"].as_str()) {
            (Some(t), Some(id)) => {
                api.token = t.to_owned();
                api.user_id = id.to_owned();
                Ok(api)
            }
            _ => Err(Failure(format!("sign-in as {user}: unexpected answer {r}"))),
        }
    }

    /// Status and JSON body (or the text as a JSON string); only transport errors fail.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), Failure> {
        let what = format!("{method} {path}");
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .header("If-Match", "*");
        if !self.token.is_empty() {
            req = req.bearer_auth(&self.token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req
            .send()
            .await
            .map_err(|e| Failure(format!("{what}: {e}")))?;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// A 2xx answer's body, or a failure naming the call and the problem's detail.
    async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let what = format!("{method} {path}");
        let (status, v) = self.call(method, path, body).await?;
        if (200..300).contains(&status) {
            Ok(v)
        } else {
            Err(Failure(format!("{what}: HTTP {status}: {}", problem(&v))))
        }
    }

    /// Creates a host; returns its id.
    pub async fn create_host(&self, name: &str) -> Result<String, Failure> {
        let h = self
            .expect(
                reqwest::Method::POST,
                "/hosts",
                Some(json!({"name": name, "os": "linux"})),
            )
            .await?;
        id_of(&h, "POST /hosts")
    }

    /// A one-time join token for the host.
    pub async fn join_token(&self, host: &str) -> Result<String, Failure> {
        let path = format!("/hosts/{host}/join-tokens");
        let t = self
            .expect(reqwest::Method::POST, &path, Some(json!({})))
            .await?;
        t["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Failure(format!("POST {path}: no token in {t}")))
    }

    /// Creates a simulated Arma 3 server with its RCon password and simulator knobs
    /// (extra launch parameters); returns its id.
    pub async fn create_sim_server(&self, s: &SimServer<'_>) -> Result<String, Failure> {
        let srv = self
            .expect(
                reqwest::Method::POST,
                "/servers",
                Some(json!({"host_id": s.host, "name": s.name, "game": "arma3",
                            "game_port": s.game_port, "rcon_port": s.rcon_port,
                            "executable_path": s.executable,
                            "restart_policy": {"mode": "on_crash"}})),
            )
            .await?;
        let id = id_of(&srv, "POST /servers")?;
        self.expect(
            reqwest::Method::PUT,
            &format!("/servers/{id}/config/sections/rcon"),
            Some(json!({"content": {"password": s.rcon_password}})),
        )
        .await?;
        self.expect(
            reqwest::Method::PUT,
            &format!("/servers/{id}/config/sections/launch"),
            Some(json!({"content": {"auto_init": true, "extra": s.knobs}})),
        )
        .await?;
        Ok(id)
    }

    /// Starts the server, retrying while the agent is still connecting; the last refusal
    /// once `within` has passed.
    pub async fn start_server(&self, id: &str, within: Duration) -> Result<(), Failure> {
        let deadline = Instant::now() + within;
        let path = format!("/servers/{id}/start");
        loop {
            match self
                .expect(reqwest::Method::POST, &path, Some(json!({})))
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// Stops the server gracefully (the controller asks the agent, which waits for it).
    pub async fn stop_server(&self, id: &str) -> Result<(), Failure> {
        self.expect(
            reqwest::Method::POST,
            &format!("/servers/{id}/stop"),
            Some(json!({})),
        )
        .await
        .map(drop)
    }

    /// Disables the signed-in account (an account cannot delete itself), so the set-up
    /// account cannot be used once the demo is over.
    pub async fn disable_self(&self) -> Result<(), Failure> {
        self.expect(
            reqwest::Method::PATCH,
            &format!("/users/{}", self.user_id),
            Some(json!({"disabled": true})),
        )
        .await
        .map(drop)
    }
}

fn id_of(v: &Value, what: &str) -> Result<String, Failure> {
    v["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Failure(format!("{what}: no id in {v}")))
}

/// The readable part of an RFC 9457 problem (or the raw body), on one line.
fn problem(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        _ => v["detail"]
            .as_str()
            .or_else(|| v["title"].as_str())
            .map_or_else(|| v.to_string(), str::to_owned),
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_read_as_one_line() {
        assert_eq!(
            problem(&json!({"title": "Conflict", "detail": "host name\ntaken"})),
            "host name taken"
        );
        assert_eq!(problem(&json!({"title": "Not Found"})), "Not Found");
        assert_eq!(
            problem(&Value::String("bad\ngateway".into())),
            "bad gateway"
        );
    }
}
