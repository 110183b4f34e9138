//! Events on their way to the controller: every event is appended to the durable
//! outbox first (which assigns its sequence number) and read back from there, so the
//! in-process interface and the link see exactly what survives a crash.

use std::time::{SystemTime, UNIX_EPOCH};

use languard_shared::wire::event::LogLine;
use languard_shared::wire::{
    Event, EventEnvelope, UnixMillis, millis_to_system_time, now_millis, system_time_to_millis,
};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::outbox::{EventClass, Gap, LogMeta, NewRecord, OutboxHandle, Record};

/// What an outbox record holds: the event and when it was recorded. The sequence
/// number is the record's own.
#[derive(Serialize, Deserialize)]
struct Stored {
    at: UnixMillis,
    event: Event,
}

/// Appends events to the outbox.
#[derive(Clone)]
pub struct Emitter {
    outbox: OutboxHandle,
}

impl Emitter {
    /// Wraps the outbox.
    pub fn new(outbox: OutboxHandle) -> Self {
        Self { outbox }
    }

    /// Appends one event; returns its sequence number. A failure is logged: the event
    /// is lost only if the outbox itself cannot write (disk full, I/O error).
    pub async fn emit(&self, event: Event) -> Option<u64> {
        let record = encode(event);
        match self.outbox.append_batch(vec![record]).await {
            Ok(range) => Some(range.start),
            Err(e) => {
                warn!(error = %e, "Cannot append an event to the outbox.");
                None
            }
        }
    }
}

/// Serialises an event into an outbox record. Log batches are the class the outbox may
/// drop under a very long outage (with a gap record); metrics too, as they are only
/// samples. Status and player events are critical.
pub fn encode(event: Event) -> NewRecord {
    let (class, log_meta) = match &event {
        Event::Log { lines, .. } => (EventClass::Log, log_meta(lines)),
        Event::Metrics { .. } => (EventClass::Log, None),
        _ => (EventClass::Critical, None),
    };
    let payload = serde_json::to_vec(&Stored {
        at: now_millis(),
        event,
    })
    .unwrap_or_default();
    NewRecord {
        class,
        payload,
        log_meta,
    }
}

fn log_meta(lines: &[LogLine]) -> Option<LogMeta> {
    let first = lines.first()?;
    let last = lines.last()?;
    Some(LogMeta {
        lines: u32::try_from(lines.len()).unwrap_or(u32::MAX),
        first: from_millis(first.at),
        last: from_millis(last.at),
    })
}

/// A line's time as the outbox keeps it; times beyond the representable range count
/// as the epoch (they only order gap records).
fn from_millis(ms: UnixMillis) -> SystemTime {
    millis_to_system_time(ms).unwrap_or(UNIX_EPOCH)
}

/// The outbox's gap encoder: a gap becomes an [`Event::Gap`] record.
pub fn encode_gap(gap: &Gap) -> Vec<u8> {
    serde_json::to_vec(&Stored {
        at: now_millis(),
        event: Event::Gap {
            records: gap.records,
            lines: gap.lines,
            first: system_time_to_millis(gap.first_time),
            last: system_time_to_millis(gap.last_time),
        },
    })
    .unwrap_or_default()
}

/// Reads a record back as an envelope; `None` for a record that does not decode (it
/// was written by this code, so that means corruption the CRC did not catch).
pub fn decode(record: &Record) -> Option<EventEnvelope> {
    match serde_json::from_slice::<Stored>(&record.payload) {
        Ok(stored) => Some(EventEnvelope {
            seq: record.seq,
            at: stored.at,
            event: stored.event,
        }),
        Err(e) => {
            warn!(seq = record.seq, error = %e, "Undecodable outbox record skipped.");
            None
        }
    }
}
