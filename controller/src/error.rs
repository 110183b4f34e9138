//! The domain error every service returns. User-safe messages only; internal causes are
//! logged where they happen and reach clients as a generic message.

use crate::store::StoreError;

/// One field-level validation problem.
#[derive(Debug, Clone, PartialEq, serde::Serialize, poem_openapi::Object)]
pub struct FieldError {
    /// Path of the field, e.g. `server.motd[2]` or `game_port`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Errors of the service layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed request.
    #[error("{0}")]
    BadRequest(String),
    /// Missing or invalid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// The addressed resource does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Conflicts with the current state (duplicate, stale revision, port clash).
    #[error("{0}")]
    Conflict(String),
    /// `If-Match` did not match the current ETag.
    #[error("{0}")]
    PreconditionFailed(String),
    /// An edit without revision or `If-Match`.
    #[error("{0}")]
    PreconditionRequired(String),
    /// Field-level validation failed.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// Too many attempts; retry after the given seconds.
    #[error("too many attempts")]
    TooManyRequests(u64),
    /// The database is unreachable.
    #[error("service unavailable")]
    Unavailable,
    /// The server's host has no agent connected (or it dropped before answering).
    #[error("host offline: its agent is not connected")]
    HostOffline,
    /// The agent did not answer in time; the operation may still happen.
    #[error("the agent did not answer within {0} s; the operation may still complete")]
    AgentTimeout(u64),
    /// The agent carried out nothing and said why.
    #[error("{message}")]
    Agent {
        /// HTTP status the code maps to.
        status: u16,
        /// The agent's machine-readable code (snake_case).
        code: String,
        /// The agent's explanation.
        message: String,
    },
    /// The server's game (or the agent of its host) cannot do what was asked; refused
    /// before anything was sent.
    #[error("{detail}")]
    Unsupported {
        /// The problem type slug (`unsupported-operation`, `unsupported-game`).
        problem: &'static str,
        /// What cannot be done, naming the game.
        detail: String,
    },
    /// A bug or an unexpected failure (cause already logged).
    #[error("internal error")]
    Internal,
}

/// Result of the service layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A single-field validation error.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    /// Logs `cause` and returns [`Error::Internal`].
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "Internal error.");
        Self::Internal
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Error::NotFound("resource"),
            StoreError::Conflict(what) => Error::Conflict(format!("conflict on {what}")),
            StoreError::StaleRevision => {
                Error::Conflict("the resource was changed by someone else; reload and retry".into())
            }
            StoreError::InvalidInput(m) => Error::BadRequest(m),
            StoreError::Unavailable(m) => {
                tracing::warn!(error = %m, "Storage unavailable.");
                Error::Unavailable
            }
            StoreError::Internal(e) => Error::internal(format!("store: {e:#}")),
        }
    }
}
