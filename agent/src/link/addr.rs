//! Where the controller's link port is, and how to reach it.
//!
//! The link is not HTTP, so the address is `host:port` (an optional `tls://` prefix is
//! accepted, since admins copy addresses from URLs), with [`DEFAULT_PORT`] when the port
//! is missing and IPv6 literals in brackets (`[::1]:7443`). The host part is also the
//! name the controller's certificate must carry.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The controller's link port when an address names none.
pub const DEFAULT_PORT: u16 = 7443;

/// The file in the identity folder remembering the address `enroll` used, so `run`
/// needs no flag.
pub const CONTROLLER_FILE: &str = "controller";

/// A controller address that does not parse; the message says what is expected.
#[derive(Debug, Error)]
#[error(
    "invalid controller address {given:?}: {reason} (expected host:port, e.g. controller.example.org:7443 or [::1]:7443)"
)]
pub struct AddrError {
    given: String,
    reason: &'static str,
}

/// Why a connection to the controller could not be made.
#[derive(Debug, Error)]
pub enum DialError {
    /// TCP connect and TLS handshake together took longer than allowed.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The TCP connection failed (refused, unreachable, name not resolved).
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    /// The TLS handshake failed (certificate refused by either side).
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] std::io::Error),
}

/// A parsed controller link address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerAddr {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
}

impl ControllerAddr {
    /// Parses `host[:port]`, `tls://host[:port]`, `[v6][:port]` or a bare IPv6 literal.
    pub fn parse(text: &str) -> Result<Self, AddrError> {
        let err = |reason| AddrError {
            given: text.to_owned(),
            reason,
        };
        let trimmed = text.trim();
        let rest = match trimmed.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("tls") => rest,
            Some(_) => return Err(err("the only scheme accepted is tls://")),
            None => trimmed,
        };
        if rest.contains(['/', '?', '#', '@']) || rest.chars().any(char::is_whitespace) {
            return Err(err("no path, user or spaces allowed"));
        }
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| err("unclosed '['"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| err("junk after ']'"))?),
            };
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(err("brackets hold an IPv6 address"));
            }
            (host, port)
        } else if rest.parse::<std::net::Ipv6Addr>().is_ok() {
            (rest, None)
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p != 0 => p,
                _ => return Err(err("the port must be a number from 1 to 65535")),
            },
        };
        if host.is_empty() {
            return Err(err("the host is missing"));
        }
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|_| err("the host is neither a DNS name nor an IP address"))?;
        Ok(Self {
            host: host.to_owned(),
            port,
            server_name,
        })
    }

    /// The host part (without brackets): the name the controller's certificate names.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// TCP connect, then a TLS handshake with `config`, both within `timeout`.
    pub async fn connect(
        &self,
        config: Arc<ClientConfig>,
        timeout: Duration,
    ) -> Result<TlsStream<TcpStream>, DialError> {
        let attempt = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(DialError::Connect)?;
            // Frames are flushed whole; waiting to coalesce only adds latency.
            let _ = tcp.set_nodelay(true);
            TlsConnector::from(config)
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(DialError::Tls)
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| DialError::Timeout(timeout))?
    }

    /// Reads the address `enroll` stored in `identity_dir`; `None` when there is none
    /// or it no longer parses (logged).
    pub fn load(identity_dir: &Path) -> Option<Self> {
        let path = identity_dir.join(CONTROLLER_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "Cannot read the stored controller address.");
                }
                return None;
            }
        };
        match Self::parse(&text) {
            Ok(addr) => Some(addr),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "Stored controller address is unusable.");
                None
            }
        }
    }
}

impl fmt::Display for ControllerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        for (text, host, port) in [
            (
                "controller.example.org:7443",
                "controller.example.org",
                7443,
            ),
            (
                "controller.example.org",
                "controller.example.org",
                DEFAULT_PORT,
            ),
            ("tls://10.0.0.5:9000", "10.0.0.5", 9000),
            ("TLS://ctl", "ctl", DEFAULT_PORT),
            ("  127.0.0.1:1\n", "127.0.0.1", 1),
            ("[::1]:7443", "::1", 7443),
            ("[2001:db8::2]", "2001:db8::2", DEFAULT_PORT),
            ("tls://[::1]:8443", "::1", 8443),
            ("::1", "::1", DEFAULT_PORT),
        ] {
            let addr = ControllerAddr::parse(text).unwrap();
            assert_eq!((addr.host(), addr.port()), (host, port), "{text}");
            // Display round-trips (it is what `enroll` stores).
            assert_eq!(ControllerAddr::parse(&addr.to_string()).unwrap(), addr);
        }
        assert_eq!(
            ControllerAddr::parse("::1").unwrap().to_string(),
            "[::1]:7443"
        );
    }

    #[test]
    fn refused_forms_say_why() {
        for text in [
            "",
            ":7443",
            "https://controller:7443",
            "controller:0",
            "controller:99999",
            "controller:port",
            "controller:7443/path",
            "user@controller",
            "[::1",
            "[::1]x",
            "[controller]:1",
            "bad name!:1",
            "a b:1",
        ] {
            let err = ControllerAddr::parse(text).unwrap_err().to_string();
            assert!(err.contains("expected host:port"), "{text}: {err}");
        }
    }
}
