//! Fleet management: the controller's side of the controller <-> agent link (DESIGN.md,
//! "Controller <-> agent link").
//!
//! - [`ca`]: the internal certificate authority (created on first start, key sealed with the
//!   master key), agent certificate issuance from CSRs, the link listener's server
//!   certificate and the mutual-TLS rustls server configuration.
//! - [`join`]: one-time join tokens an admin hands to `languard-agent enroll`.
//! - [`link`]: the TLS listener agents dial; [`enroll`] serves enrollment connections.
//! - [`registry`]: connected agents, request routing, revoked agent ids.
//! - [`ingest`]: agent events to rows and live messages, ownership checks.
//! - [`limits`]: what an agent may store (lengths, times, figures).
//!
//! Crypto: ECDSA P-256 with SHA-256 everywhere, rustls with the `ring` provider, TLS 1.3 only.

pub mod ca;
pub mod enroll;
pub mod ingest;
pub mod join;
pub mod limits;
pub mod link;
pub mod registry;
