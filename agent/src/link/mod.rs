//! The agent's side of the controller link (DESIGN.md, "Controller <-> agent link").
//!
//! - [`identity`]: the agent's key pair, CSR, certificate and pinned CA, and the rustls
//!   client configuration (TLS 1.3, `ring`, our CA as the only root, client certificate).

pub mod identity;
