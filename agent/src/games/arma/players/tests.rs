use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use languard_shared::wire::ChatChannel;

use super::*;

const G1: &str = "4f0c611d97e5379680d79f2f36b2e9e1";
const G2: &str = "0123456789abcdef0123456789abcdef";

fn player(number: u32, name: &str, guid: Option<&str>, verified: bool) -> Player {
    Player {
        number,
        ip: "10.0.0.2".parse().unwrap(),
        port: 2304,
        ping: Some(40),
        guid: guid.map(str::to_owned),
        verified,
        name: name.to_owned(),
        in_lobby: false,
    }
}

fn connected(number: u32, name: &str) -> ServerEvent {
    ServerEvent::PlayerConnected {
        number,
        name: name.into(),
        ip: "10.0.0.2".parse().unwrap(),
        port: 2304,
    }
}

fn disconnected(number: u32, name: &str) -> ServerEvent {
    ServerEvent::PlayerDisconnected {
        number,
        name: name.into(),
    }
}

fn kinds(events: &[PlayerEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            PlayerEvent::Joined { player } => format!("joined #{} {}", player.key, player.name),
            PlayerEvent::Left { key, name, .. } => format!("left #{key} {name}"),
            PlayerEvent::Kicked { key, name, .. } => format!("kicked #{key} {name}"),
            PlayerEvent::Chat { name, text, .. } => format!("chat {name}: {text}"),
            PlayerEvent::Identified {
                key,
                name,
                verified: true,
                ..
            } => format!("verified #{key} {name}"),
            PlayerEvent::Identified { key, name, .. } => format!("identified #{key} {name}"),
            PlayerEvent::AdminLogin { admin, .. } => format!("admin {admin}"),
        })
        .collect()
}

fn be_guid(number: u32, name: &str, guid: &str) -> ServerEvent {
    ServerEvent::PlayerGuid {
        number,
        name: name.into(),
        guid: guid.into(),
        notice: languard_shared::arma::rcon::parse::GuidNotice::BeGuid,
    }
}

fn verified_guid(number: u32, name: &str, guid: &str) -> ServerEvent {
    ServerEvent::GuidVerified {
        number,
        name: name.into(),
        guid: guid.into(),
    }
}

fn identified(key: &str, name: &str, account: &str, verified: bool) -> PlayerEvent {
    PlayerEvent::Identified {
        key: key.into(),
        name: name.into(),
        account: account.into(),
        verified,
    }
}

/// The order a real server reports a join in: connect (no GUID), `BE GUID`, then
/// `Verified GUID`. The account is reported as soon as it is known and carried by
/// the leave.
#[test]
fn players_account_follows_the_real_message_order() {
    let mut t = PlayerTracker::new();
    let ev = t.apply_server_event(&connected(0, "Name"));
    let [PlayerEvent::Joined { player: joined }] = ev.as_slice() else {
        panic!("{ev:?}");
    };
    assert_eq!(joined.key, "0");
    assert_eq!(joined.account, None);
    assert!(!joined.verified);
    assert_eq!(joined.address, Some("10.0.0.2".parse().unwrap()));
    assert!(joined.in_lobby);
    assert_eq!(
        t.apply_server_event(&be_guid(0, "Name", G1)),
        [identified("0", "Name", G1, false)]
    );
    // The same line again changes nothing.
    assert!(t.apply_server_event(&be_guid(0, "Name", G1)).is_empty());
    assert_eq!(
        t.apply_server_event(&verified_guid(0, "Name", G1)),
        [identified("0", "Name", G1, true)]
    );
    assert!(
        t.apply_server_event(&verified_guid(0, "Name", G1))
            .is_empty()
    );
    // The poll agrees: nothing new.
    assert!(
        t.apply_snapshot(vec![player(0, "Name", Some(G1), true)])
            .is_empty()
    );
    assert_eq!(
        t.apply_server_event(&disconnected(0, "Name")),
        [PlayerEvent::Left {
            key: "0".into(),
            name: "Name".into(),
            account: Some(G1.into())
        }]
    );
    // A kick of a player identified by message carries the account too.
    t.apply_server_event(&connected(1, "Other"));
    t.apply_server_event(&be_guid(1, "Other", G2));
    let ev = t.apply_server_event(&ServerEvent::PlayerKicked {
        number: 1,
        name: "Other".into(),
        guid: None,
        reason: "Admin Kick".into(),
    });
    assert_eq!(
        ev,
        [PlayerEvent::Kicked {
            key: "1".into(),
            name: "Other".into(),
            account: Some(G2.into()),
            reason: "Admin Kick".into()
        }]
    );
}

/// The poller sees the player (GUID known, not yet verified) before any message.
#[test]
fn players_seen_by_the_poll_first_join_with_their_account() {
    let mut t = PlayerTracker::new();
    let ev = t.apply_snapshot(vec![player(3, "Poll", Some(G1), false)]);
    let [PlayerEvent::Joined { player: joined }] = ev.as_slice() else {
        panic!("{ev:?}");
    };
    assert_eq!(joined.account.as_deref(), Some(G1));
    assert!(!joined.verified);
    assert_eq!(joined.ping_ms, Some(40));
    // The late messages: BE GUID is known already, the verification is news.
    assert!(t.apply_server_event(&connected(3, "Poll")).is_empty());
    assert!(t.apply_server_event(&be_guid(3, "Poll", G1)).is_empty());
    assert_eq!(
        t.apply_server_event(&verified_guid(3, "Poll", G1)),
        [identified("3", "Poll", G1, true)]
    );
    // An older poll answer (unverified) does not undo it.
    assert!(
        t.apply_snapshot(vec![player(3, "Poll", Some(G1), false)])
            .is_empty()
    );
    // A player first polled without a GUID is identified by the poll that has it.
    t.apply_snapshot(vec![
        player(3, "Poll", Some(G1), true),
        player(4, "Late", None, false),
    ]);
    assert_eq!(
        t.apply_snapshot(vec![
            player(3, "Poll", Some(G1), true),
            player(4, "Late", Some(G2), false),
        ]),
        [identified("4", "Late", G2, false)]
    );
    assert_eq!(
        t.apply_snapshot(vec![player(4, "Late", Some(G2), false)]),
        [PlayerEvent::Left {
            key: "3".into(),
            name: "Poll".into(),
            account: Some(G1.into())
        }]
    );
}

#[test]
fn players_snapshots_diff_into_joins_and_leaves() {
    let mut t = PlayerTracker::new();
    assert!(t.apply_snapshot(vec![]).is_empty());
    let ev = t.apply_snapshot(vec![
        player(0, "Alice", Some(G1), true),
        player(1, "Bob", None, false),
    ]);
    assert_eq!(kinds(&ev), ["joined #0 Alice", "joined #1 Bob"]);
    // Same players again (ping changed, Bob's GUID arrived): nothing but Bob verified.
    let mut a = player(0, "Alice", Some(G1), true);
    a.ping = Some(80);
    let ev = t.apply_snapshot(vec![a, player(1, "Bob", Some(G2), true)]);
    assert_eq!(kinds(&ev), ["verified #1 Bob"]);
    assert_eq!(t.players()[0].ping, Some(80));
    let ev = t.apply_snapshot(vec![player(1, "Bob", Some(G2), true)]);
    assert_eq!(
        ev,
        [PlayerEvent::Left {
            key: "0".into(),
            name: "Alice".into(),
            account: Some(G1.into())
        }]
    );
    assert_eq!(t.players().len(), 1);
}

#[test]
fn players_number_reuse_is_leave_then_join() {
    let mut t = PlayerTracker::new();
    t.apply_snapshot(vec![player(3, "Alice", Some(G1), true)]);
    // Between two polls Alice left and Carol got number 3.
    let ev = t.apply_snapshot(vec![player(3, "Carol", Some(G2), false)]);
    assert_eq!(kinds(&ev), ["left #3 Alice", "joined #3 Carol"]);
    // Same number, same name, different GUID: a different person.
    let ev = t.apply_snapshot(vec![player(3, "Carol", Some(G1), false)]);
    assert_eq!(kinds(&ev), ["left #3 Carol", "joined #3 Carol"]);
    // By message: #3 connects as Dave although we never saw Carol leave.
    let ev = t.apply_server_event(&connected(3, "Dave"));
    assert_eq!(kinds(&ev), ["left #3 Carol", "joined #3 Dave"]);
}

#[test]
fn players_message_join_then_poll_does_not_join_twice() {
    let mut t = PlayerTracker::new();
    let ev = t.apply_server_event(&connected(5, "Eve"));
    assert_eq!(kinds(&ev), ["joined #5 Eve"]);
    assert!(t.players()[0].in_lobby);
    let ev = t.apply_server_event(&be_guid(5, "Eve", G1));
    assert_eq!(kinds(&ev), ["identified #5 Eve"]);
    let ev = t.apply_server_event(&ServerEvent::GuidVerified {
        number: 5,
        name: "Eve".into(),
        guid: G1.into(),
    });
    assert_eq!(kinds(&ev), ["verified #5 Eve"]);
    // The poll confirms Eve (still unverified in its older view): no events.
    let ev = t.apply_snapshot(vec![player(5, "Eve", Some(G1), false)]);
    assert!(ev.is_empty(), "{ev:?}");
    assert!(t.players()[0].verified);
    assert_eq!(t.players()[0].ping, Some(40));
    // Verified again by a later poll: no duplicate.
    assert!(
        t.apply_snapshot(vec![player(5, "Eve", Some(G1), true)])
            .is_empty()
    );
}

#[test]
fn players_poll_older_than_join_message_keeps_player_once() {
    let mut t = PlayerTracker::new();
    t.apply_server_event(&connected(1, "Finn"));
    // This answer was produced before Finn connected.
    assert!(t.apply_snapshot(vec![]).is_empty());
    assert_eq!(t.players().len(), 1);
    // The next poll shows him: still no second join.
    assert!(
        t.apply_snapshot(vec![player(1, "Finn", None, false)])
            .is_empty()
    );
    // A message join never confirmed by two polls is dropped as left.
    t.apply_server_event(&connected(2, "Ghost"));
    assert!(
        t.apply_snapshot(vec![player(1, "Finn", None, false)])
            .is_empty()
    );
    let ev = t.apply_snapshot(vec![player(1, "Finn", None, false)]);
    assert_eq!(kinds(&ev), ["left #2 Ghost"]);
}

#[test]
fn players_poll_older_than_leave_message_does_not_rejoin() {
    let mut t = PlayerTracker::new();
    t.apply_snapshot(vec![player(1, "Hank", Some(G1), true)]);
    let ev = t.apply_server_event(&disconnected(1, "Hank"));
    assert_eq!(kinds(&ev), ["left #1 Hank"]);
    // This answer predates the disconnect.
    assert!(
        t.apply_snapshot(vec![player(1, "Hank", Some(G1), true)])
            .is_empty()
    );
    assert!(t.players().is_empty());
    // A real rejoin is announced by a connect message and is reported.
    let ev = t.apply_server_event(&connected(1, "Hank"));
    assert_eq!(kinds(&ev), ["joined #1 Hank"]);
    // A leave for someone unknown reports nothing.
    assert!(t.apply_server_event(&disconnected(9, "Nobody")).is_empty());
    // Poll-detected leave, then the late disconnect message: one Left only.
    t.apply_snapshot(vec![player(1, "Hank", None, false)]);
    let ev = t.apply_snapshot(vec![]);
    assert_eq!(kinds(&ev), ["left #1 Hank"]);
    assert!(t.apply_server_event(&disconnected(1, "Hank")).is_empty());
}

#[test]
fn players_kick_then_disconnect_reports_kick_once() {
    let mut t = PlayerTracker::new();
    t.apply_snapshot(vec![player(4, "Ivan", Some(G2), true)]);
    let ev = t.apply_server_event(&ServerEvent::PlayerKicked {
        number: 4,
        name: "Ivan".into(),
        guid: None,
        reason: "Admin Kick (spam)".into(),
    });
    assert_eq!(
        ev,
        [PlayerEvent::Kicked {
            key: "4".into(),
            name: "Ivan".into(),
            account: Some(G2.into()),
            reason: "Admin Kick (spam)".into()
        }]
    );
    assert!(t.apply_server_event(&disconnected(4, "Ivan")).is_empty());
    assert!(
        t.apply_snapshot(vec![player(4, "Ivan", Some(G2), true)])
            .is_empty()
    );
    assert!(t.players().is_empty());
    // A ban hitting a player we never saw is still reported.
    let ev = t.apply_server_event(&ServerEvent::PlayerKicked {
        number: 7,
        name: "Jack".into(),
        guid: Some(G1.into()),
        reason: "Admin Ban (cheating)".into(),
    });
    assert_eq!(kinds(&ev), ["kicked #7 Jack"]);
}

#[test]
fn players_chat_and_missed_connect() {
    let mut t = PlayerTracker::new();
    let ev = t.apply_server_event(&ServerEvent::Chat {
        channel: ChatChannel::Side,
        name: "Matt Fox".into(),
        text: "hello".into(),
    });
    assert_eq!(kinds(&ev), ["chat Matt Fox: hello"]);
    // GUID message for a player whose connect we missed: joined, then verified.
    let ev = t.apply_server_event(&ServerEvent::GuidVerified {
        number: 2,
        name: "Kim".into(),
        guid: G1.into(),
    });
    assert_eq!(kinds(&ev), ["joined #2 Kim", "verified #2 Kim"]);
    assert!(
        t.apply_snapshot(vec![player(2, "Kim", Some(G1), true)])
            .is_empty()
    );
    assert!(
        t.apply_server_event(&ServerEvent::Unknown("x".into()))
            .is_empty()
    );
}

#[test]
fn players_event_serde_shape() {
    let ev = PlayerEvent::Joined {
        player: wire_player(&player(1, "A", None, false)),
    };
    let v = serde_json::to_value(&ev).unwrap();
    assert_eq!(v["kind"], "joined");
    assert_eq!(v["player"]["name"], "A");
    assert_eq!(v["player"]["key"], "1");
    let back: PlayerEvent = serde_json::from_value(v).unwrap();
    assert_eq!(back, ev);
    let ev = PlayerEvent::Chat {
        channel: ChatChannel::Other("Custom".into()),
        name: "A".into(),
        text: "t".into(),
    };
    let back: PlayerEvent = serde_json::from_str(&serde_json::to_string(&ev).unwrap()).unwrap();
    assert_eq!(back, ev);
}

/// Answers `players` from a script; fails every other call.
struct FakeRcon {
    answers: Vec<&'static str>,
    calls: Arc<AtomicUsize>,
}

impl RconCommand for FakeRcon {
    fn command(&self, command: &str) -> impl Future<Output = Result<String, RconError>> + Send {
        assert_eq!(command, "players");
        let i = self.calls.fetch_add(1, Ordering::SeqCst);
        let answer = if i % 2 == 1 {
            Err(RconError::CommandTimeout { attempts: 3 })
        } else {
            Ok(self.answers.get(i / 2).copied().unwrap_or("").to_owned())
        };
        async move { answer }
    }
}

#[tokio::test]
async fn players_poller_polls_survives_errors_and_merges_messages() {
    let one = "Players on server:\n[#] [IP Address]:[Port] [Ping] [GUID] [Name]\n\
               --------------------------------------------------\n\
               0   10.0.0.2:2304         40   4f0c611d97e5379680d79f2f36b2e9e1(OK) Alice\n\
               (1 players in total)";
    let none = "Players on server:\n[#] [IP Address]:[Port] [Ping] [GUID] [Name]\n\
                --------------------------------------------------\n(0 players in total)";
    let calls = Arc::new(AtomicUsize::new(0));
    let fake = FakeRcon {
        answers: vec![one, one, none],
        calls: Arc::clone(&calls),
    };
    let config = PlayerPollerConfig {
        interval: Duration::from_millis(20),
        error_log_interval: Duration::from_secs(60),
    };
    let (msg_tx, msg_rx) = mpsc::channel(8);
    let (ev_tx, mut ev_rx) = mpsc::channel(8);
    let task = PlayerPoller::new(fake, config).spawn(msg_rx, ev_tx);
    let recv = async |rx: &mut mpsc::Receiver<PlayerEvent>| {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(kinds(&[recv(&mut ev_rx).await]), ["joined #0 Alice"]);
    msg_tx
        .send(ServerEvent::Chat {
            channel: ChatChannel::Global,
            name: "Alice".into(),
            text: "gg".into(),
        })
        .await
        .unwrap();
    assert_eq!(kinds(&[recv(&mut ev_rx).await]), ["chat Alice: gg"]);
    assert_eq!(kinds(&[recv(&mut ev_rx).await]), ["left #0 Alice"]);
    assert!(
        calls.load(Ordering::SeqCst) >= 5,
        "errors did not stop polling"
    );
    drop(ev_rx);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
