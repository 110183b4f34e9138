//! Live events for consoles (DESIGN.md, "API and console"): the link publishes what it
//! has committed to the [`LiveHub`]; every WebSocket connection (`crate::api::live`)
//! filters the stream by its subscriptions, after redeeming a single-use [`tickets`]
//! ticket.
//!
//! The hub is a `tokio::sync::broadcast` channel: publishing never waits, each console
//! has its own bounded window of the stream, and a console that falls further behind
//! than the window loses the oldest messages and is told how many (`lagged`). So a slow
//! console slows neither the others nor the ingest. Messages are serialised to JSON once,
//! at publish time, and shared.

pub mod tickets;

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;
use uuid::Uuid;

/// Messages a console can be behind before it starts losing them.
pub const HUB_CAPACITY: usize = 4096;

/// What a subscription can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Server state changes (and host online/offline).
    Status,
    /// Log lines, in batches.
    Log,
    /// Metric samples.
    Metrics,
    /// Player joins, leaves, kicks and identifications (the game learned or verified a
    /// player's account).
    Players,
    /// Everything that goes into a server's history: chat, admin logins, kicks, status
    /// changes, outbox gaps.
    Events,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 5] = [
        Channel::Status,
        Channel::Log,
        Channel::Metrics,
        Channel::Players,
        Channel::Events,
    ];
}

/// One published message. `json` is the complete frame sent to consoles.
#[derive(Debug)]
pub struct LiveMessage {
    /// The server it is about (`None`: host-wide).
    pub server_id: Option<Uuid>,
    /// The host it came from.
    pub host_id: Option<Uuid>,
    /// Its channel.
    pub channel: Channel,
    /// `{"type":"event","channel":…,"server":…,"host":…,"data":…}`.
    pub json: Arc<str>,
}

/// The frame a console receives for a published message.
#[derive(Serialize)]
struct Frame<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    channel: Channel,
    server: Option<Uuid>,
    host: Option<Uuid>,
    data: &'a T,
}

/// The fan-out point. Cheap to clone.
#[derive(Clone)]
pub struct LiveHub {
    tx: broadcast::Sender<Arc<LiveMessage>>,
}

impl Default for LiveHub {
    fn default() -> Self {
        Self::new(HUB_CAPACITY)
    }
}

impl LiveHub {
    /// A hub whose consoles may fall `capacity` messages behind.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self { tx }
    }

    /// Publishes `data` on `channel`. Never waits; without consoles it costs one
    /// serialisation check.
    pub fn publish<T: Serialize>(
        &self,
        channel: Channel,
        server_id: Option<Uuid>,
        host_id: Option<Uuid>,
        data: &T,
    ) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let frame = Frame {
            kind: "event",
            channel,
            server: server_id,
            host: host_id,
            data,
        };
        match serde_json::to_string(&frame) {
            Ok(json) => {
                let _ = self.tx.send(Arc::new(LiveMessage {
                    server_id,
                    host_id,
                    channel,
                    json: json.into(),
                }));
            }
            Err(e) => tracing::warn!(error = %e, "Live message not serialisable; dropped."),
        }
    }

    /// A new receiver positioned at the newest message.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveMessage>> {
        self.tx.subscribe()
    }

    /// Consoles connected.
    pub fn consoles(&self) -> usize {
        self.tx.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_console_that_falls_behind_loses_the_oldest_and_learns_how_many() {
        let hub = LiveHub::new(4);
        let mut slow = hub.subscribe();
        let mut fast = hub.subscribe();
        for i in 0..10u32 {
            hub.publish(Channel::Log, None, None, &i);
            // The fast console keeps up.
            let m = fast.recv().await.unwrap();
            assert!(m.json.contains(&format!("\"data\":{i}")), "{}", m.json);
        }
        match slow.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => assert_eq!(n, 6),
            other => panic!("expected a lag notice, got {other:?}"),
        }
        // Then the newest four, in order.
        for i in 6..10u32 {
            let m = slow.recv().await.unwrap();
            assert!(m.json.contains(&format!("\"data\":{i}")));
        }
    }

    #[test]
    fn frames_carry_channel_server_and_data() {
        let hub = LiveHub::new(4);
        let mut rx = hub.subscribe();
        let sid = Uuid::nil();
        hub.publish(
            Channel::Status,
            Some(sid),
            None,
            &serde_json::json!({"state": "running"}),
        );
        let m = rx.try_recv().unwrap();
        let v: serde_json::Value = serde_json::from_str(&m.json).unwrap();
        assert_eq!(v["type"], "event");
        assert_eq!(v["channel"], "status");
        assert_eq!(v["server"], sid.to_string());
        assert_eq!(v["data"]["state"], "running");
    }
}
