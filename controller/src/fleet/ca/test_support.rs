//! Helpers the CA's test modules share.

#![allow(clippy::unwrap_used)] // test helpers panic on failure

use rcgen::{CertificateParams, KeyPair};

use super::Ca;
use crate::secrets::MasterKey;

pub(super) fn master() -> MasterKey {
    MasterKey::from_bytes([3u8; 32])
}

pub(super) fn new_ca() -> (tempfile::TempDir, Ca) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(dir.path(), &master()).unwrap();
    (dir, ca)
}

pub(super) fn plain_csr(key: &KeyPair) -> String {
    CertificateParams::default()
        .serialize_request(key)
        .unwrap()
        .pem()
        .unwrap()
}
