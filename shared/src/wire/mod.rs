//! What the controller and the agent say to each other, in game-neutral terms. The
//! agent's in-process interface and the mTLS link carry exactly these types, so nothing
//! is translated on the way. Games appear only as the per-game spec payload
//! ([`spec::GameSpec`], defined with the game registry in `crate::games`).
//!
//! - [`spec`]: the desired state of one game server, as the controller owns it.
//! - [`request`]: controller → agent requests; each gets exactly one response, with a
//!   typed [`request::AgentError`].
//! - [`operation`]: admin operations on a running game and the capability names.
//! - [`event`]: agent → controller events, each with a per-agent sequence number.
//! - [`player`]: players and their activity, as every game reports them.

pub mod event;
pub mod frame;
pub mod ids;
pub mod link;
pub mod operation;
pub mod player;
pub mod request;
pub mod spec;

pub use event::{Event, EventEnvelope, ExitInfo, LogLevel, ServerState, ServerStatus};
pub use ids::ServerId;
pub use operation::{BanTarget, Operation, OperationKind};
pub use player::{ChatChannel, Player, PlayerEvent};
pub use request::{AgentError, ErrorCode, Request, Response};
pub use spec::ServerSpec;

/// Version of this message set; a hello exchange refuses a peer with another major.
/// Version 2: game-neutral players, log levels and operations.
pub const PROTOCOL_VERSION: u32 = 2;

/// Milliseconds since the Unix epoch: the one time format on the wire.
pub type UnixMillis = i64;

/// The current time as [`UnixMillis`].
pub fn now_millis() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A [`UnixMillis`] as a time; out-of-range values (beyond year ±9999) give `None`.
pub fn millis_to_system_time(ms: UnixMillis) -> Option<std::time::SystemTime> {
    let d = std::time::Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        std::time::UNIX_EPOCH.checked_add(d)
    } else {
        std::time::UNIX_EPOCH.checked_sub(d)
    }
}

/// A time as [`UnixMillis`] (saturating; times before the epoch are negative).
pub fn system_time_to_millis(t: std::time::SystemTime) -> UnixMillis {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}
