//! The agent's side of the controller link (DESIGN.md, "Controller <-> agent link").
//!
//! - [`identity`]: the agent's key pair, CSR, certificate and pinned CA, and the rustls
//!   client configuration (TLS 1.3, `ring`, our CA as the only root, client certificate).
//! - [`addr`]: the controller's link address (`host:port`) and dialling it.
//! - [`pinned`]: trusting the controller on first contact by the join token's CA
//!   fingerprint.
//! - [`enroll`]: `languard-agent enroll`: join token in, identity installed.
//! - [`client`]: the link itself: hello/welcome, requests, event streaming with acks and
//!   flow control, heartbeats, reconnects ([`backoff`]) and certificate renewal
//!   ([`renewal`]).

pub mod addr;
pub mod backoff;
pub mod client;
pub mod enroll;
pub mod identity;
pub mod pinned;
pub mod renewal;

pub use addr::ControllerAddr;
pub use client::{Link, LinkOptions, start};
