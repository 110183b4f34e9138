//! Errors and warnings of the config models, renderers and importers.
//!
//! Every error names *where* the problem is: a field path in the model
//! (`server.motd[2]`, `server.missions[0].template`) for validation, and a
//! line/column in the input text for parsing, so the API can point an admin at
//! the exact input to fix.

use std::fmt;

/// Position in a parsed text, 1-based, columns counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters, not bytes).
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// What is wrong with one field's value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FieldProblem {
    /// A control character cannot be written into an Arma config string (the
    /// format has no escape for it, and CR/LF would end the line).
    #[error("contains control character U+{code:04X} at character {index}")]
    ControlChar {
        /// The offending code point.
        code: u32,
        /// Character index inside the value.
        index: usize,
    },
    /// Class and parameter names must match `[A-Za-z_][A-Za-z0-9_]*`.
    #[error("`{0}` is not a valid identifier (expected [A-Za-z_][A-Za-z0-9_]*)")]
    BadIdentifier(String),
    /// Numeric value outside the accepted range.
    #[error("{value} is outside the allowed range {range}")]
    OutOfRange {
        /// The value as written.
        value: String,
        /// The allowed range, human readable.
        range: String,
    },
    /// NaN or infinity cannot be written.
    #[error("number is not finite")]
    NotFinite,
    /// The parsed value has the wrong type for this field.
    #[error("expected {0}")]
    WrongType(&'static str),
    /// The same name appears twice (case-insensitive).
    #[error("duplicate name `{0}`")]
    Duplicate(String),
    /// An extra entry would shadow a parameter the typed model manages.
    #[error("`{0}` is a managed parameter; set it through its typed field")]
    Reserved(String),
    /// Anything else, described in words.
    #[error("{0}")]
    Invalid(String),
}

/// Error of a config model, renderer or parser.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The text is not valid config syntax.
    #[error("{pos}: {message}")]
    Syntax {
        /// Where the parser stopped.
        pos: Pos,
        /// What it expected.
        message: String,
    },
    /// A field of the model holds a value that cannot be written.
    #[error("{field}: {problem}")]
    Field {
        /// Path of the field in the model, e.g. `server.motd[2]`.
        field: String,
        /// What is wrong.
        problem: FieldProblem,
    },
    /// An imported file holds a known key with an unusable value.
    #[error("{pos}: {field}: {problem}")]
    Import {
        /// Where the entry starts in the input.
        pos: Pos,
        /// Path of the model field the entry maps to.
        field: String,
        /// What is wrong.
        problem: FieldProblem,
    },
}

impl ConfigError {
    /// Shorthand for [`ConfigError::Field`].
    pub fn field(field: impl Into<String>, problem: FieldProblem) -> Self {
        Self::Field {
            field: field.into(),
            problem,
        }
    }

    /// Attaches an input position to a field error (used by the importers).
    pub(crate) fn at(self, pos: Pos) -> Self {
        match self {
            Self::Field { field, problem } => Self::Import {
                pos,
                field,
                problem,
            },
            other => other,
        }
    }

    /// The field path, when the error is about a field.
    pub fn field_path(&self) -> Option<&str> {
        match self {
            Self::Field { field, .. } | Self::Import { field, .. } => Some(field),
            Self::Syntax { .. } => None,
        }
    }
}

/// Something an importer accepted but the admin should know about.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImportWarning {
    /// Where the entry is in the input.
    pub pos: Pos,
    /// What happened to it.
    pub kind: WarningKind,
}

/// Kinds of [`ImportWarning`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum WarningKind {
    /// Unknown top-level parameter, kept verbatim in `extra`.
    KeptAsExtra(String),
    /// An entry that has no place in the model (an unknown class, an unknown
    /// key inside a known class, a forward declaration) was dropped.
    Dropped(String),
    /// The key appeared more than once; the last value wins (as in Arma).
    Duplicate(String),
}

impl fmt::Display for ImportWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            WarningKind::KeptAsExtra(k) => {
                write!(f, "{}: unknown parameter `{k}` kept as extra", self.pos)
            }
            WarningKind::Dropped(k) => write!(f, "{}: `{k}` ignored", self.pos),
            WarningKind::Duplicate(k) => {
                write!(f, "{}: `{k}` set more than once, last value wins", self.pos)
            }
        }
    }
}
