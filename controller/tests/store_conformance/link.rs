//! The fleet link: join tokens, enrollment, host link state, ingest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

pub(crate) fn new_join_token(host_id: Uuid, expires_at: OffsetDateTime) -> NewJoinToken {
    NewJoinToken {
        id: Uuid::now_v7(),
        host_id,
        secret_hash: format!("sha256-{}", Uuid::new_v4().simple()),
        expires_at,
        created_by: None,
    }
}

pub(crate) fn enrollment(token: &JoinTokenRow, agent_id: Uuid) -> Enrollment {
    Enrollment {
        token_id: token.id,
        host_id: token.host_id,
        agent_id,
        os: HostOs::Windows,
        agent_version: "1.2.3".into(),
        cert_serial: agent_id.simple().to_string(),
        at: now(),
    }
}

/// When the join token was used (`None`: still unused).
pub(crate) async fn token_used_at(s: &S, id: Uuid) -> Option<OffsetDateTime> {
    s.get_join_token(id).await.unwrap().unwrap().used_at
}

/// The host an agent id is bound to.
pub(crate) async fn agent_host(s: &S, agent: Uuid) -> Option<Host> {
    s.get_host_by_agent_id(&agent.to_string()).await.unwrap()
}

pub(crate) fn batch(host_id: Uuid, upto: i64) -> IngestBatch {
    IngestBatch {
        host_id,
        upto,
        ..Default::default()
    }
}

pub(crate) fn log_line(server_id: Uuid, seq: i64, text: &str) -> NewLogLine {
    NewLogLine {
        server_id,
        seq,
        ts: t0() + Duration::seconds(seq),
        level: LogLevel::Info,
        text: text.into(),
    }
}

pub(crate) fn status(server_id: Uuid, state: &str, pid: Option<i64>) -> ServerStatusRow {
    ServerStatusRow {
        server_id,
        state: server_state(state),
        pid,
        since: t0(),
        detail: None,
        exit_code: None,
        exit_signal: None,
        restarts: 0,
        updated_at: t0(),
    }
}

pub(crate) fn event(srv: &Server, seq: i64, kind: &str) -> NewServerEvent {
    NewServerEvent {
        server_id: Some(srv.id),
        host_id: srv.host_id,
        seq,
        ts: t0() + Duration::seconds(seq),
        kind: kind.parse().unwrap(),
        data: json!({"seq": seq}),
    }
}

/// Every event of a server and/or host (all kinds), newest first.
pub(crate) async fn events_of(
    s: &S,
    server_id: Option<Uuid>,
    host_id: Option<Uuid>,
) -> Vec<ServerEvent> {
    s.query_server_events(ServerEventQuery {
        server_id,
        host_id,
        limit: 1000,
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Every roll-up bucket of a subject at one resolution, oldest first.
pub(crate) async fn rollups_of(
    s: &S,
    server_id: Option<Uuid>,
    host_id: Option<Uuid>,
    bucket_secs: i64,
) -> StoreResult<Vec<MetricRollup>> {
    s.query_metric_rollups(RollupQuery {
        server_id,
        host_id,
        bucket_secs,
        limit: 10_000,
        ..Default::default()
    })
    .await
}

pub(crate) async fn join_tokens_create_get_list(s: S) {
    let h = host(&s, "jt").await;
    let other = host(&s, "jt-other").await;
    let u = user(&s, "jt-admin").await;
    let mut first = new_join_token(h.id, t0() + Duration::hours(1));
    first.created_by = Some(u.id);
    let a = s.insert_join_token(first.clone()).await.unwrap();
    assert_eq!(a.id, first.id);
    assert_eq!(a.host_id, h.id);
    assert_eq!(a.secret_hash, first.secret_hash);
    assert_eq!(a.expires_at, first.expires_at);
    assert_eq!(a.used_at, None);
    assert_eq!(a.created_by, Some(u.id));
    assert_eq!(s.get_join_token(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(s.get_join_token(Uuid::now_v7()).await.unwrap(), None);
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let b = s
        .insert_join_token(new_join_token(h.id, t0() + Duration::hours(2)))
        .await
        .unwrap();
    s.insert_join_token(new_join_token(other.id, t0()))
        .await
        .unwrap();
    let listed: Vec<Uuid> = s
        .list_join_tokens(h.id)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(listed, [b.id, a.id], "newest first, only this host's");
    // Same id twice; a missing host.
    assert!(matches!(
        s.insert_join_token(first).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.insert_join_token(new_join_token(Uuid::now_v7(), t0()))
            .await,
        Err(StoreError::Conflict(_))
    ));
    // Deleting the creator keeps the token.
    s.delete_user(u.id).await.unwrap();
    assert_eq!(
        s.get_join_token(a.id).await.unwrap().unwrap().created_by,
        None
    );
}

pub(crate) async fn enroll_agent_race_one_wins(s: S) {
    let h = host(&s, "race").await;
    let tok = s
        .insert_join_token(new_join_token(h.id, now() + Duration::hours(1)))
        .await
        .unwrap();
    let mut handles = Vec::new();
    for _ in 0..20 {
        let s = s.clone();
        let e = enrollment(&tok, Uuid::new_v4());
        handles.push(tokio::spawn(async move {
            (e.agent_id, s.enroll_agent(e).await)
        }));
    }
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for hd in handles {
        match hd.await.unwrap() {
            (agent, Ok(host)) => winners.push((agent, host)),
            (agent, Err(StoreError::Conflict(what))) => {
                assert_eq!(what, "join token");
                losers.push(agent);
            }
            (_, Err(e)) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one enrollment may use a token");
    let (agent, bound) = &winners[0];
    assert_eq!(bound.agent_id, Some(agent.to_string()));
    assert_eq!(bound.os, HostOs::Windows);
    assert_eq!(bound.agent_version.as_deref(), Some("1.2.3"));
    assert_eq!(bound.status, HostStatus::Offline);
    assert_eq!(bound.acked_seq, 0);
    assert_eq!(s.get_host(h.id).await.unwrap().as_ref(), Some(bound));
    assert!(token_used_at(&s, tok.id).await.is_some());
    for l in losers {
        assert!(agent_host(&s, l).await.is_none());
    }
}

pub(crate) async fn enroll_agent_refusals_change_nothing(s: S) {
    let h = host(&s, "refuse").await;
    let other = host(&s, "refuse-other").await;
    let at = now();
    let conflict =
        |r: StoreResult<Host>| matches!(r, Err(StoreError::Conflict(ref w)) if w == "join token");

    // Expired (expiry is exclusive: a token is dead at its expiry instant).
    let expired = s.insert_join_token(new_join_token(h.id, at)).await.unwrap();
    let mut e = enrollment(&expired, Uuid::new_v4());
    e.at = at;
    assert!(conflict(s.enroll_agent(e).await));
    // Made for another host.
    let tok = s
        .insert_join_token(new_join_token(other.id, at + Duration::hours(1)))
        .await
        .unwrap();
    let mut e = enrollment(&tok, Uuid::new_v4());
    e.host_id = h.id;
    assert!(conflict(s.enroll_agent(e).await));
    // Unknown token.
    let mut e = enrollment(&tok, Uuid::new_v4());
    e.token_id = Uuid::now_v7();
    assert!(conflict(s.enroll_agent(e).await));
    for t in [&expired, &tok] {
        assert_eq!(token_used_at(&s, t.id).await, None);
    }
    assert_eq!(s.get_host(h.id).await.unwrap().unwrap(), h);
    assert_eq!(s.get_host(other.id).await.unwrap().unwrap(), other);

    // The right host: works once, then the token is spent.
    let agent = Uuid::new_v4();
    s.enroll_agent(enrollment(&tok, agent)).await.unwrap();
    assert!(conflict(
        s.enroll_agent(enrollment(&tok, Uuid::new_v4())).await
    ));
    assert_eq!(
        s.get_host(other.id).await.unwrap().unwrap().agent_id,
        Some(agent.to_string())
    );

    // An agent id another host holds: refused by the unique index, token stays unused.
    let tok_h = s
        .insert_join_token(new_join_token(h.id, at + Duration::hours(1)))
        .await
        .unwrap();
    assert!(matches!(
        s.enroll_agent(enrollment(&tok_h, agent)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(token_used_at(&s, tok_h.id).await, None);
    assert_eq!(s.get_host(h.id).await.unwrap().unwrap(), h);
}

pub(crate) async fn host_link_state(s: S) {
    let h = host(&s, "link").await;
    let tok = s
        .insert_join_token(new_join_token(h.id, now() + Duration::hours(1)))
        .await
        .unwrap();
    let agent = Uuid::new_v4();
    s.enroll_agent(enrollment(&tok, agent)).await.unwrap();
    assert_eq!(agent_host(&s, agent).await.unwrap().id, h.id);
    assert!(s.get_host_by_agent_id("nobody").await.unwrap().is_none());

    let t1 = t0() + Duration::minutes(1);
    s.set_host_link(h.id, HostStatus::Online, Some("1.3.0"), t1)
        .await
        .unwrap();
    let got = s.get_host(h.id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.agent_version.as_deref(), got.last_seen_at),
        (HostStatus::Online, Some("1.3.0"), Some(t1))
    );
    // No version given: the stored one stays.
    let t2 = t1 + Duration::minutes(1);
    s.set_host_link(h.id, HostStatus::Offline, None, t2)
        .await
        .unwrap();
    let got = s.get_host(h.id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.agent_version.as_deref(), got.last_seen_at),
        (HostStatus::Offline, Some("1.3.0"), Some(t2))
    );
    assert!(matches!(
        s.set_host_link(h.id, HostStatus::Pending, None, t2).await,
        Err(StoreError::InvalidInput(_))
    ));
    assert!(matches!(
        s.set_host_link(Uuid::now_v7(), HostStatus::Online, None, t2)
            .await,
        Err(StoreError::NotFound)
    ));

    // Start-up reset: online hosts go offline, others are left alone.
    let h2 = host(&s, "link-2").await;
    s.set_host_link(h.id, HostStatus::Online, None, t2)
        .await
        .unwrap();
    s.set_host_link(h2.id, HostStatus::Online, None, t2)
        .await
        .unwrap();
    let pending = host(&s, "link-pending").await;
    assert_eq!(s.reset_host_links().await.unwrap(), 2);
    assert_eq!(
        s.get_host(h.id).await.unwrap().unwrap().status,
        HostStatus::Offline
    );
    assert_eq!(
        s.get_host(h2.id).await.unwrap().unwrap().status,
        HostStatus::Offline
    );
    assert_eq!(
        s.get_host(pending.id).await.unwrap().unwrap().status,
        HostStatus::Pending
    );
    assert_eq!(s.reset_host_links().await.unwrap(), 0);

    // Revoked stays revoked: a link event does not un-revoke, a second revoke keeps the time.
    let t3 = t2 + Duration::minutes(1);
    let r = s.revoke_host(h.id, t3).await.unwrap();
    assert_eq!((r.status, r.revoked_at), (HostStatus::Revoked, Some(t3)));
    s.set_host_link(h.id, HostStatus::Online, None, t3 + Duration::seconds(1))
        .await
        .unwrap();
    let got = s.get_host(h.id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.revoked_at),
        (HostStatus::Revoked, Some(t3))
    );
    assert_eq!(got.last_seen_at, Some(t3 + Duration::seconds(1)));
    let again = s.revoke_host(h.id, t3 + Duration::hours(1)).await.unwrap();
    assert_eq!(again.revoked_at, Some(t3));
    assert!(matches!(
        s.revoke_host(Uuid::now_v7(), t3).await,
        Err(StoreError::NotFound)
    ));

    // update_host never writes the link's fields.
    s.ingest(batch(h2.id, 7)).await.unwrap();
    let mut stale = s.get_host(h2.id).await.unwrap().unwrap();
    stale.acked_seq = 0;
    stale.agent_version = Some("stale".into());
    stale.name = "link-2-renamed".into();
    let updated = s.update_host(&stale).await.unwrap();
    assert_eq!(updated.name, "link-2-renamed");
    assert_eq!((updated.acked_seq, updated.agent_version), (7, None));

    // Re-enrollment un-revokes and resets the ack.
    s.ingest(batch(h.id, 42)).await.unwrap();
    let tok2 = s
        .insert_join_token(new_join_token(h.id, now() + Duration::hours(1)))
        .await
        .unwrap();
    let re = s
        .enroll_agent(enrollment(&tok2, Uuid::new_v4()))
        .await
        .unwrap();
    assert_eq!(
        (re.status, re.revoked_at, re.acked_seq),
        (HostStatus::Offline, None, 0)
    );
    assert!(agent_host(&s, agent).await.is_none());
}

pub(crate) async fn ingest_logs_nul_and_ack(s: S) {
    let srv = server(&s).await;
    let mut b = batch(srv.host_id, 10);
    b.logs = (0..1500)
        .map(|i| log_line(srv.id, i, &format!("tick {i}")))
        .collect();
    b.logs
        .push(log_line(srv.id, 1500, "Player Needle\0Man connected"));
    assert_eq!(s.ingest(b).await.unwrap(), 10);
    assert_eq!(
        s.get_host(srv.host_id).await.unwrap().unwrap().acked_seq,
        10
    );
    let found = s
        .query_logs(LogQuery {
            server_id: Some(srv.id),
            contains: Some("needle".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].text, "Player Needle\u{FFFD}Man connected");
    assert_eq!(found.items[0].seq, 1500);
    let all = s
        .query_logs(LogQuery {
            server_id: Some(srv.id),
            limit: 5000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.items.len(), 1501);

    // A replayed (older) batch never lowers the ack; an empty batch still acks.
    assert_eq!(s.ingest(batch(srv.host_id, 3)).await.unwrap(), 10);
    assert_eq!(s.ingest(batch(srv.host_id, 11)).await.unwrap(), 11);
    assert_eq!(
        s.get_host(srv.host_id).await.unwrap().unwrap().acked_seq,
        11
    );
    assert!(matches!(
        s.ingest(batch(Uuid::now_v7(), 1)).await,
        Err(StoreError::NotFound)
    ));
}

pub(crate) async fn ingest_statuses_and_events(s: S) {
    let a = server(&s).await;
    let b = s
        .create_server(
            a.host_id,
            spec("second", 2402),
            &ports_of(&spec("second", 2402)),
        )
        .await
        .unwrap();
    let c = server(&s).await; // another host
    let mut bt = batch(a.host_id, 1);
    bt.statuses = vec![
        status(a.id, "starting", None),
        status(b.id, "running", Some(11)),
        status(a.id, "running", Some(42)),
    ];
    let started = now();
    s.ingest(bt).await.unwrap();
    let mut cb = batch(c.host_id, 1);
    cb.statuses = vec![status(c.id, "stopped", None)];
    s.ingest(cb).await.unwrap();

    let on_host = s.list_server_statuses(Some(a.host_id)).await.unwrap();
    assert_eq!(on_host.len(), 2);
    let sa = on_host.iter().find(|r| r.server_id == a.id).unwrap();
    assert_eq!((sa.state, sa.pid), (server_state("running"), Some(42)));
    assert!(
        sa.updated_at >= started,
        "updated_at is the time of storing"
    );
    assert_eq!(s.list_server_statuses(None).await.unwrap().len(), 3);

    // Last wins across batches too, every field replaced.
    let mut crashed = status(a.id, "crashed", None);
    crashed.detail = Some("segfault\0".into());
    crashed.exit_code = Some(-11);
    crashed.exit_signal = Some(11);
    crashed.restarts = 3;
    crashed.since = t0() + Duration::minutes(5);
    let mut bt = batch(a.host_id, 2);
    bt.statuses = vec![crashed.clone()];
    s.ingest(bt).await.unwrap();
    let sa = s
        .list_server_statuses(Some(a.host_id))
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.server_id == a.id)
        .unwrap();
    assert_eq!(
        ServerStatusRow {
            updated_at: crashed.updated_at,
            ..sa
        },
        ServerStatusRow {
            detail: Some("segfault\u{FFFD}".into()),
            ..crashed
        }
    );

    // Events: newest first, kinds filter, id cursor, limit, host-wide events.
    let mut bt = batch(a.host_id, 20);
    bt.events = (1..=10)
        .map(|i| event(&a, i, if i % 2 == 0 { "status" } else { "chat" }))
        .collect();
    bt.events.push(event(&b, 11, "status"));
    bt.events.push(NewServerEvent {
        server_id: None,
        host_id: a.host_id,
        seq: 12,
        ts: t0(),
        kind: ServerEventKind::Gap,
        data: json!({"lines": 5, "note": "a\0b"}),
    });
    s.ingest(bt).await.unwrap();
    let q = |server_id: Option<Uuid>, kinds: &[&str], before: Option<i64>, limit: i64| {
        let s = s.clone();
        let kinds = kinds.iter().map(|k| k.parse().unwrap()).collect();
        async move {
            s.query_server_events(ServerEventQuery {
                server_id,
                host_id: None,
                kinds,
                before,
                limit,
            })
            .await
            .unwrap()
        }
    };
    let all = q(Some(a.id), &[], None, 100).await;
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=10).rev().collect::<Vec<_>>()
    );
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(all[0].data, json!({"seq": 10}));
    assert_eq!(all[0].ts, t0() + Duration::seconds(10));
    assert_eq!(all[0].host_id, a.host_id);
    let statuses = q(Some(a.id), &["status"], None, 3).await;
    assert_eq!(
        statuses.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [10, 8, 6]
    );
    let next = q(Some(a.id), &["status"], Some(statuses[2].id), 3).await;
    assert_eq!(next.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 2]);
    let both = q(Some(a.id), &["status", "chat"], None, 0).await;
    assert_eq!(both.len(), 1, "limit is clamped to at least 1");
    let host_wide = s
        .query_server_events(ServerEventQuery {
            host_id: Some(a.host_id),
            kinds: vec![ServerEventKind::Gap],
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(host_wide.len(), 1);
    assert_eq!(host_wide[0].server_id, None);
    assert_eq!(host_wide[0].data, json!({"lines": 5, "note": "a\u{FFFD}b"}));
    assert_eq!(events_of(&s, None, Some(a.host_id)).await.len(), 12);
}

pub(crate) async fn ingest_sessions(s: S) {
    let srv = server(&s).await;
    let other = server(&s).await;
    let at = |m: i64| t0() + Duration::minutes(m);
    let join = |server_id: Uuid, account: &str, name: &str, m: i64| SessionChange::Join {
        server_id,
        account: account.into(),
        name: name.into(),
        ip: Some("10.0.0.1".into()),
        at: at(m),
    };
    let sessions = |server_id: Uuid| {
        let s = s.clone();
        async move {
            s.list_player_sessions(SessionQuery {
                server_id: Some(server_id),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
        }
    };
    let mut b = batch(srv.host_id, 1);
    b.sessions = vec![
        join(srv.id, "g-alice", "Alice", 0),
        join(srv.id, "g-bob", "Bob", 1),
        join(srv.id, "g-carol", "Carol", 2),
        // A join while on the server (reported twice): the player is updated, the session
        // stays the one that is open.
        join(srv.id, "g-alice", "Alice2", 3),
        SessionChange::Leave {
            server_id: srv.id,
            account: Some("g-bob".into()),
            name: "ignored".into(),
            at: at(4),
        },
        // Unknown account: closed by name.
        SessionChange::Leave {
            server_id: srv.id,
            account: None,
            name: "Carol".into(),
            at: at(5),
        },
        // Nothing open: nothing happens.
        SessionChange::Leave {
            server_id: srv.id,
            account: Some("g-nobody".into()),
            name: "Nobody".into(),
            at: at(5),
        },
    ];
    s.ingest(b).await.unwrap();
    let alice = player(&s, "g-alice").await.unwrap();
    assert_eq!(
        (alice.game, alice.last_name.as_str()),
        (GameKind::Arma3, "Alice2")
    );
    assert_eq!((alice.first_seen, alice.last_seen), (at(0), at(3)));
    assert!(player(&s, "g-nobody").await.is_none());
    let list = sessions(srv.id).await;
    assert_eq!(list.len(), 3);
    // Newest first: carol, bob, alice (still open).
    assert_eq!(
        list.iter()
            .map(|x| (x.joined_at, x.left_at))
            .collect::<Vec<_>>(),
        [(at(2), Some(at(5))), (at(1), Some(at(4))), (at(0), None)]
    );
    assert_eq!(list[2].player_id, alice.id);
    assert_eq!(list[2].ip.as_deref(), Some("10.0.0.1"));

    // CloseAll closes only that server's open sessions.
    let mut b = batch(srv.host_id, 2);
    b.sessions = vec![
        join(other.id, "g-alice", "Alice2", 6),
        SessionChange::CloseAll {
            server_id: srv.id,
            at: at(7),
        },
    ];
    s.ingest(b).await.unwrap();
    assert_eq!(sessions(srv.id).await[2].left_at, Some(at(7)));
    assert_eq!(sessions(other.id).await[0].left_at, None);
}

pub(crate) async fn ingest_rollups(s: S) {
    let srv = server(&s).await;
    let h = srv.host_id;
    let base = t0(); // 22:13:20 UTC
    let sample =
        |sec: i64, cpu: Option<f64>, rss: Option<i64>, players: Option<i64>| NewMetricSample {
            server_id: Some(srv.id),
            host_id: Some(h),
            ts: Some(base + Duration::seconds(sec)),
            cpu_percent: cpu,
            rss_bytes: rss,
            players,
            fps: None,
        };
    let host_sample = |sec: i64, cpu: Option<f64>| NewMetricSample {
        host_id: Some(h),
        ts: Some(base + Duration::seconds(sec)),
        cpu_percent: cpu,
        ..Default::default()
    };
    let mut b1 = batch(h, 1);
    b1.metrics = vec![
        sample(10, Some(10.0), Some(100), Some(2)),
        host_sample(0, None),
    ];
    s.ingest(b1).await.unwrap();
    let mut b2 = batch(h, 2);
    b2.metrics = vec![
        // Same minute as the first sample, without cpu: must not pull the cpu average down.
        sample(20, None, Some(300), Some(4)),
        // Next minute.
        sample(70, Some(30.0), None, None),
        sample(75, Some(f64::NAN), None, None),
        host_sample(5, Some(5.0)),
    ];
    s.ingest(b2).await.unwrap();
    let q = |server_id, host_id, secs| rollups_of(&s, server_id, host_id, secs);
    let minute = |m: i64| OffsetDateTime::from_unix_timestamp(1_700_000_000 - 20 + m * 60).unwrap();
    let m1 = q(Some(srv.id), None, 60).await.unwrap();
    assert_eq!(
        m1,
        [
            MetricRollup {
                ts: minute(0),
                bucket_secs: 60,
                samples: 2,
                cpu_avg: Some(10.0),
                cpu_max: Some(10.0),
                rss_avg: Some(200.0),
                rss_max: Some(300),
                players_avg: Some(3.0),
                players_max: Some(4),
            },
            MetricRollup {
                ts: minute(1),
                bucket_secs: 60,
                samples: 2,
                cpu_avg: Some(30.0),
                cpu_max: Some(30.0),
                rss_avg: None,
                rss_max: None,
                players_avg: None,
                players_max: None,
            },
        ]
    );
    let hour = OffsetDateTime::from_unix_timestamp(1_700_000_000 / 3600 * 3600).unwrap();
    let h1 = q(Some(srv.id), None, 3600).await.unwrap();
    assert_eq!(
        h1,
        [MetricRollup {
            ts: hour,
            bucket_secs: 3600,
            samples: 4,
            cpu_avg: Some(20.0),
            cpu_max: Some(30.0),
            rss_avg: Some(200.0),
            rss_max: Some(300),
            players_avg: Some(3.0),
            players_max: Some(4),
        }]
    );
    let m5 = q(Some(srv.id), None, 300).await.unwrap();
    assert_eq!(m5.len(), 1);
    assert_eq!(m5[0].samples, 4);
    // from inclusive, to exclusive.
    let ranged = s
        .query_metric_rollups(RollupQuery {
            server_id: Some(srv.id),
            bucket_secs: 60,
            from: Some(minute(1)),
            to: Some(minute(2)),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ranged.len(), 1);
    assert_eq!(ranged[0].ts, minute(1));
    // Host-wide samples roll up under the host only; a max can start from NULL.
    let hw = q(None, Some(h), 60).await.unwrap();
    assert_eq!(hw.len(), 1);
    assert_eq!(
        (hw[0].samples, hw[0].cpu_avg, hw[0].cpu_max, hw[0].rss_avg),
        (2, Some(5.0), Some(5.0), None)
    );
    // Raw samples are stored too; the NaN one without cpu.
    let raw = s
        .query_metrics(MetricQuery {
            server_id: Some(srv.id),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(raw.len(), 4);
    assert_eq!(raw[3].cpu_percent, None);
    // Samples stored outside ingest roll up as well.
    store_metrics(&s, vec![sample(130, Some(50.0), None, None)])
        .await
        .unwrap();
    assert_eq!(q(Some(srv.id), None, 60).await.unwrap().len(), 3);
    // Bad queries.
    for (server_id, host_id, secs) in [
        (Some(srv.id), Some(h), 60),
        (None, None, 60),
        (Some(srv.id), None, 61),
    ] {
        assert!(matches!(
            q(server_id, host_id, secs).await,
            Err(StoreError::InvalidInput(_))
        ));
    }
}

pub(crate) async fn ingest_failure_stores_nothing(s: S) {
    let srv = server(&s).await;
    s.ingest(batch(srv.host_id, 5)).await.unwrap();
    let mut b = batch(srv.host_id, 9);
    b.logs = vec![
        log_line(srv.id, 1, "kept?"),
        log_line(Uuid::now_v7(), 2, "no such server"),
    ];
    b.metrics = vec![NewMetricSample {
        server_id: Some(srv.id),
        ts: Some(t0()),
        players: Some(1),
        ..Default::default()
    }];
    b.statuses = vec![status(srv.id, "running", Some(1))];
    b.events = vec![event(&srv, 1, "status")];
    b.sessions = vec![SessionChange::Join {
        server_id: srv.id,
        account: "g-fail".into(),
        name: "Fail".into(),
        ip: None,
        at: t0(),
    }];
    let err = s.ingest(b.clone()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref w) if w.starts_with("foreign key")),
        "{err:?}"
    );
    let check_empty = || {
        let s = s.clone();
        async move {
            assert_eq!(s.get_host(srv.host_id).await.unwrap().unwrap().acked_seq, 5);
            let logs = s
                .query_logs(LogQuery {
                    server_id: Some(srv.id),
                    limit: 10,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert!(logs.items.is_empty());
            let m = s
                .query_metrics(MetricQuery {
                    server_id: Some(srv.id),
                    limit: 10,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert!(m.is_empty());
            for secs in ROLLUP_BUCKETS {
                assert!(
                    rollups_of(&s, Some(srv.id), None, secs)
                        .await
                        .unwrap()
                        .is_empty()
                );
            }
            assert!(s.list_server_statuses(None).await.unwrap().is_empty());
            assert!(events_of(&s, None, Some(srv.host_id)).await.is_empty());
            assert!(player(&s, "g-fail").await.is_none());
        }
    };
    check_empty().await;
    // A failure late in the batch (a session for a missing server) undoes the rest too.
    b.logs.truncate(1);
    b.sessions.push(SessionChange::Join {
        server_id: Uuid::now_v7(),
        account: "g-fail2".into(),
        name: "Fail2".into(),
        ip: None,
        at: t0(),
    });
    assert!(s.ingest(b.clone()).await.is_err());
    check_empty().await;
    // Without the bad rows the same batch goes through.
    b.sessions.truncate(1);
    assert_eq!(s.ingest(b).await.unwrap(), 9);
}

pub(crate) async fn deletes_cascade_link_rows(s: S) {
    let srv = server(&s).await;
    let h = srv.host_id;
    let tok = s
        .insert_join_token(new_join_token(h, now() + Duration::hours(1)))
        .await
        .unwrap();
    let mut b = batch(h, 1);
    b.statuses = vec![status(srv.id, "running", Some(1))];
    b.events = vec![
        event(&srv, 1, "status"),
        NewServerEvent {
            server_id: None,
            ..event(&srv, 2, "gap")
        },
    ];
    b.metrics = vec![
        NewMetricSample {
            server_id: Some(srv.id),
            ts: Some(t0()),
            players: Some(3),
            ..Default::default()
        },
        NewMetricSample {
            host_id: Some(h),
            ts: Some(t0()),
            cpu_percent: Some(1.0),
            ..Default::default()
        },
    ];
    s.ingest(b).await.unwrap();
    let events = async |server_id, host_id| events_of(&s, server_id, host_id).await.len();
    let rollups = async |server_id, host_id| {
        rollups_of(&s, server_id, host_id, 3600)
            .await
            .unwrap()
            .len()
    };
    assert_eq!(events(None, Some(h)).await, 2);
    assert_eq!(rollups(Some(srv.id), None).await, 1);
    assert_eq!(rollups(None, Some(h)).await, 1);

    // Deleting the server takes its status, events and roll-ups; the host's stay.
    s.delete_server(srv.id).await.unwrap();
    assert!(s.list_server_statuses(None).await.unwrap().is_empty());
    assert_eq!(events(Some(srv.id), None).await, 0);
    assert_eq!(events(None, Some(h)).await, 1);
    assert_eq!(rollups(Some(srv.id), None).await, 0);
    assert_eq!(rollups(None, Some(h)).await, 1);

    // Deleting the host takes its tokens, events and roll-ups.
    s.delete_host(h).await.unwrap();
    assert!(s.get_join_token(tok.id).await.unwrap().is_none());
    assert_eq!(events(None, Some(h)).await, 0);
    assert_eq!(rollups(None, Some(h)).await, 0);
}
