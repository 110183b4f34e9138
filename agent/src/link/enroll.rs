//! `languard-agent enroll`: turn a one-time join token into the agent's link identity.
//!
//! The agent makes a key pair, dials the controller's link port without a client
//! certificate, trusting only the CA the token's fingerprint names
//! ([`PinnedCaVerifier`]), sends [`AgentMessage::Enroll`] with a CSR and gets back its
//! certificate. Everything is prepared in a staging folder next to the live identity
//! and moved into place only after success, so a failed or refused enrollment leaves
//! a previous identity working. The token is a secret: it is sent once and never
//! logged, printed or stored.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use languard_shared::wire::PROTOCOL_VERSION;
use languard_shared::wire::frame::{FrameError, FramedLink, MAX_FRAME_LEN};
use languard_shared::wire::link::{AgentMessage, ControllerMessage, JoinTokenSecret};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use thiserror::Error;
use tracing::{info, warn};

use super::addr::{CONTROLLER_FILE, ControllerAddr, DialError};
use super::identity::{
    Identity, IdentityError, fingerprint_from_join_token, pin_check, write_atomic,
};
use super::pinned::{PinnedCaVerifier, is_pin_mismatch};

/// The identity's folder inside the agent's data folder.
pub const IDENTITY_DIR: &str = "identity";
/// Where a new identity is prepared.
const STAGING_DIR: &str = "identity.new";
/// Where the previous identity waits while the new one moves in.
const OLD_DIR: &str = "identity.old";

/// Default time allowed for connecting and for the controller's answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What `enroll` needs.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// The agent's data folder; the identity goes into [`IDENTITY_DIR`] below it.
    pub data_dir: PathBuf,
    /// The controller's link port.
    pub controller: ControllerAddr,
    /// The join token (its `Debug` hides it).
    pub token: JoinTokenSecret,
    /// The host's name for the console.
    pub hostname: String,
    /// Limit for connecting, and then for the controller's answer.
    pub timeout: Duration,
}

/// The outcome of a successful enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    /// The agent id the certificate names.
    pub agent_id: String,
    /// The host record the token was made for.
    pub host_id: String,
}

/// Why enrollment failed. Nothing was installed; none of these carries the token.
#[derive(Debug, Error)]
pub enum EnrollError {
    /// The token is not shaped like a join token.
    #[error(
        "the join token is malformed: expected lgj_<id>.<secret>.<expiry>.<fingerprint> as the console shows it"
    )]
    MalformedToken,
    /// Key generation or storing the certificate failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The controller could not be reached.
    #[error("controller {addr}: {source}")]
    Dial {
        /// The address dialled.
        addr: String,
        /// The cause.
        #[source]
        source: DialError,
    },
    /// The server's CA is not the one the token names: wrong address, wrong token, or
    /// someone in between.
    #[error(
        "controller {0}: its CA certificate does not match the fingerprint in the join token (check the address and the token)"
    )]
    Fingerprint(String),
    /// The connection failed after the handshake.
    #[error("controller {addr}: {source}")]
    Link {
        /// The address dialled.
        addr: String,
        /// The cause.
        #[source]
        source: FrameError,
    },
    /// No answer in time.
    #[error("controller {0} did not answer within {1:?}")]
    Timeout(String, Duration),
    /// The controller said no (token unknown, used or expired; host revoked).
    #[error("the controller refused the enrollment: {0}")]
    Refused(String),
    /// The controller answered something that is not an enrollment answer.
    #[error("controller {addr}: {what}")]
    Protocol {
        /// The address dialled.
        addr: String,
        /// What was wrong.
        what: String,
    },
    /// Moving the new identity into place failed.
    #[error("cannot install the new identity in {path}: {source}")]
    Install {
        /// The folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// The identity folder of the data folder `data_dir`.
pub fn identity_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(IDENTITY_DIR)
}

/// This host's name as the OS reports it (for the console), or `unknown`.
pub fn default_hostname() -> String {
    sysinfo::System::host_name()
        .ok()
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Enrolls with the controller and installs the new identity (replacing any previous
/// one only on success) and the controller's address. See the module doc.
pub async fn enroll(options: EnrollOptions) -> Result<Enrollment, EnrollError> {
    let fingerprint =
        fingerprint_from_join_token(&options.token.0).ok_or(EnrollError::MalformedToken)?;
    recover_interrupted_install(&options.data_dir);
    let staging = options.data_dir.join(STAGING_DIR);
    match enroll_into(&options, &fingerprint, &staging).await {
        Ok(enrollment) => {
            install(&options.data_dir)?;
            info!(controller = %options.controller, agent_id = %enrollment.agent_id, "Enrolled.");
            Ok(enrollment)
        }
        Err(e) => {
            if let Err(cleanup) = remove_dir_if_present(&staging) {
                warn!(path = %staging.display(), error = %cleanup, "Cannot remove the staging identity.");
            }
            Err(e)
        }
    }
}

/// Makes the key in `staging`, runs the exchange and stores the certificate and the
/// controller's address there.
async fn enroll_into(
    options: &EnrollOptions,
    fingerprint: &str,
    staging: &Path,
) -> Result<Enrollment, EnrollError> {
    let addr = options.controller.to_string();
    let install_err = |source| EnrollError::Install {
        path: staging.to_path_buf(),
        source,
    };
    remove_dir_if_present(staging).map_err(install_err)?;
    let mut identity = Identity::generate(staging)?;
    let csr_pem = identity.csr_pem()?;

    let config = PinnedCaVerifier::new(fingerprint)
        .client_config()
        .map_err(|e| IdentityError::Certificate(e.to_string()))?;
    let stream = options
        .controller
        .connect(Arc::new(config), options.timeout)
        .await
        .map_err(|source| match source {
            DialError::Tls(e) if is_pin_mismatch(&e) => EnrollError::Fingerprint(addr.clone()),
            source => EnrollError::Dial {
                addr: addr.clone(),
                source,
            },
        })?;
    let mut link = FramedLink::new(stream, MAX_FRAME_LEN);
    let request = AgentMessage::Enroll {
        protocol_version: PROTOCOL_VERSION,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        token: options.token.clone(),
        csr_pem,
        hostname: options.hostname.clone(),
        os: if cfg!(windows) { "windows" } else { "linux" }.to_owned(),
    };
    let exchange = async {
        link.send(&request).await?;
        link.recv::<ControllerMessage>().await
    };
    let reply = tokio::time::timeout(options.timeout, exchange)
        .await
        .map_err(|_| EnrollError::Timeout(addr.clone(), options.timeout))?
        .map_err(|source| EnrollError::Link {
            addr: addr.clone(),
            source,
        })?;
    let protocol = |what: &str| EnrollError::Protocol {
        addr: addr.clone(),
        what: what.to_owned(),
    };
    let (agent_id, host_id, cert_pem, ca_pem) = match reply {
        Some(ControllerMessage::Enrolled {
            agent_id,
            host_id,
            cert_pem,
            ca_pem,
        }) => (agent_id, host_id, cert_pem, ca_pem),
        Some(ControllerMessage::Refused { reason }) => return Err(EnrollError::Refused(reason)),
        Some(_) => return Err(protocol("answered the enrollment with another message")),
        None => return Err(protocol("closed the connection without answering")),
    };
    if !is_pinned_ca(&ca_pem, fingerprint) {
        return Err(protocol(
            "the CA certificate it returned is not the one the join token names",
        ));
    }
    identity.store_certificate(&cert_pem, &ca_pem)?;
    write_atomic(
        &staging.join(CONTROLLER_FILE),
        format!("{}\n", options.controller).as_bytes(),
    )?;
    // Best effort: the controller closes after answering anyway.
    let (_, mut writer) = link.into_split();
    let _ = tokio::time::timeout(Duration::from_secs(1), writer.shutdown()).await;
    Ok(Enrollment { agent_id, host_id })
}

/// Whether `ca_pem` is exactly one certificate with the pinned fingerprint. More than
/// one would make the agent trust extra roots.
pub(crate) fn is_pinned_ca(ca_pem: &str, fingerprint: &str) -> bool {
    let certs: Result<Vec<CertificateDer<'static>>, _> =
        CertificateDer::pem_slice_iter(ca_pem.as_bytes()).collect();
    matches!(certs.as_deref(), Ok([ca]) if pin_check(ca, fingerprint))
}

/// Moves the staged identity into place: the live folder aside, the staged one in, the
/// old one removed. [`recover_interrupted_install`] finishes a crash in between.
fn install(data_dir: &Path) -> Result<(), EnrollError> {
    let live = identity_dir(data_dir);
    let staged = data_dir.join(STAGING_DIR);
    let old = data_dir.join(OLD_DIR);
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EnrollError::Install { path, source }
    };
    remove_dir_if_present(&old).map_err(err(&old))?;
    if live.exists() {
        std::fs::rename(&live, &old).map_err(err(&live))?;
    }
    std::fs::rename(&staged, &live).map_err(err(&live))?;
    sync_dir(data_dir);
    if let Err(e) = remove_dir_if_present(&old) {
        warn!(path = %old.display(), error = %e, "Cannot remove the previous identity.");
    }
    Ok(())
}

/// Completes an [`install`] that a crash interrupted between its two renames: the
/// staged identity moves in if it is complete, otherwise the previous one comes back.
pub fn recover_interrupted_install(data_dir: &Path) {
    let live = identity_dir(data_dir);
    let staged = data_dir.join(STAGING_DIR);
    let old = data_dir.join(OLD_DIR);
    if !live.exists() && old.exists() {
        let from = if Identity::load(&staged).is_some() {
            &staged
        } else {
            &old
        };
        match std::fs::rename(from, &live) {
            Ok(()) => info!(path = %live.display(), "Finished an interrupted identity install."),
            Err(e) => warn!(path = %live.display(), error = %e, "Cannot restore the identity."),
        }
    }
    if live.exists()
        && let Err(e) = remove_dir_if_present(&old)
    {
        warn!(path = %old.display(), error = %e, "Cannot remove the previous identity.");
    }
}

fn remove_dir_if_present(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
