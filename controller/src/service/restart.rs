//! A server's restart policy as stored: the serde form of the wire's
//! [`RestartPolicy`], the one type every layer uses (the API converts at its boundary).

use languard_shared::wire::spec::RestartPolicy;
use serde::Deserialize;
use serde_json::Value;

/// The stored JSON as a policy. Rows written by the API before protocol version 2
/// (`{"mode": "on-failure", "max_restarts": 5, "window_secs": 600}`) read with their
/// values; a row without a policy, or a damaged one, reads as the default (restart after
/// a crash, 5 times in 10 minutes).
pub fn from_stored(v: &Value) -> RestartPolicy {
    RestartPolicy::deserialize(v).unwrap_or_default()
}

/// The policy as stored.
pub fn to_stored(p: &RestartPolicy) -> Value {
    serde_json::to_value(p).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use languard_shared::wire::spec::RestartMode;
    use serde_json::json;

    use super::*;

    #[test]
    fn old_rows_keep_their_values() {
        let p = from_stored(&json!({"mode": "on-failure", "max_restarts": 3, "window_secs": 60}));
        assert_eq!(p.mode, RestartMode::OnCrash);
        assert_eq!((p.crash_loop_max, p.crash_loop_window_secs), (3, 60));
        assert_eq!(
            p.backoff_initial_ms,
            RestartPolicy::default().backoff_initial_ms
        );
        assert_eq!(
            from_stored(&json!({"mode": "never"})).mode,
            RestartMode::Never
        );
    }

    #[test]
    fn missing_or_damaged_rows_read_as_the_default() {
        assert_eq!(from_stored(&json!({})), RestartPolicy::default());
        assert_eq!(from_stored(&Value::Null), RestartPolicy::default());
        assert_eq!(from_stored(&json!({"mode": 7})), RestartPolicy::default());
    }

    #[test]
    fn stored_form_round_trips() {
        let p = RestartPolicy {
            mode: RestartMode::Always,
            backoff_initial_ms: 10,
            backoff_max_ms: 20,
            crash_loop_max: 0,
            crash_loop_window_secs: 30,
        };
        assert_eq!(from_stored(&to_stored(&p)), p);
    }
}
