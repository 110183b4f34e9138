//! The revision a write expects (optimistic concurrency): from the body's `revision` or
//! an `If-Match` header, and the error a mismatch gives (409 for the body, 412 for the
//! header).

use crate::error::{Error, Result};

/// How a revision was supplied (decides 409 vs 412 on mismatch).
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// `revision` in the body.
    Body(i64),
    /// `If-Match` header.
    IfMatch(i64),
    /// `If-Match: *`: any current revision (resolved with [`Expect::against`]).
    Any,
}

impl Expect {
    /// From body revision and an `If-Match` header value (`"<n>"`, `W/"<n>"` or `n`).
    /// `*` matches whatever revision is current (RFC 9110 §13.1.1).
    pub fn from_parts(body: Option<i64>, if_match: Option<&str>) -> Result<Self> {
        if if_match.is_some_and(|h| h.trim() == "*") {
            return Ok(body.map_or(Self::Any, Self::Body));
        }
        if let Some(h) = if_match {
            let v = h.trim().trim_start_matches("W/").trim_matches('"');
            let n = v.parse::<i64>().map_err(|_| {
                Error::PreconditionFailed("If-Match does not name a known revision".into())
            })?;
            if let Some(b) = body
                && b != n
            {
                return Err(Error::BadRequest(
                    "revision in body and If-Match disagree".into(),
                ));
            }
            return Ok(Self::IfMatch(n));
        }
        body.map(Self::Body).ok_or_else(|| {
            Error::PreconditionRequired(
                "send the current revision in the body or an If-Match header".into(),
            )
        })
    }

    /// The expected revision (`-1`, matching nothing, for an unresolved `Any`).
    pub fn value(self) -> i64 {
        match self {
            Self::Body(n) | Self::IfMatch(n) => n,
            Self::Any => -1,
        }
    }

    /// Checks against the current revision: `Any` becomes that revision, a mismatch is
    /// the stale error (409 for a body revision, 412 for `If-Match`).
    pub fn against(self, current: i64) -> Result<Self> {
        match self {
            Self::Any => Ok(Self::IfMatch(current)),
            e if e.value() == current => Ok(e),
            e => Err(e.stale(Some(current))),
        }
    }

    /// The error for a stale revision.
    pub fn stale(self, current: Option<i64>) -> Error {
        let cur = current
            .map(|c| format!(" (current revision is {c})"))
            .unwrap_or_default();
        match self {
            Self::Body(_) => Error::Conflict(format!(
                "the resource was changed by someone else{cur}; reload and retry"
            )),
            Self::IfMatch(_) | Self::Any => {
                Error::PreconditionFailed(format!("If-Match does not match the current ETag{cur}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_star_matches_the_current_revision() {
        let e = Expect::from_parts(None, Some("*")).unwrap();
        assert!(matches!(e, Expect::Any));
        assert_eq!(e.against(7).unwrap().value(), 7);
        // With a body revision, the body decides.
        let e = Expect::from_parts(Some(3), Some(" * ")).unwrap();
        assert!(e.against(7).is_err());
        assert_eq!(e.against(3).unwrap().value(), 3);
        // A numbered If-Match still has to match.
        let e = Expect::from_parts(None, Some("\"4\"")).unwrap();
        assert!(matches!(e.against(5), Err(Error::PreconditionFailed(_))));
        assert!(Expect::from_parts(None, Some("\"x\"")).is_err());
    }
}
