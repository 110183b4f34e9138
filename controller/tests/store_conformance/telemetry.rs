//! Audit log, logs and metrics queries, hostile strings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

pub(crate) async fn audit_filters_and_pagination(s: S) {
    let alice = user(&s, "alice").await;
    let mut all = Vec::new();
    for i in 0..25i64 {
        let ev = NewAuditEvent {
            // Pairs share a timestamp so the (ts, id) tie-break is exercised.
            ts: Some(t0() + Duration::seconds(i / 2)),
            actor_user_id: if i % 3 == 0 { None } else { Some(alice.id) },
            actor_kind: if i % 3 == 0 {
                ActorKind::System
            } else {
                ActorKind::User
            },
            action: if i % 2 == 0 {
                "server.update".into()
            } else {
                "user.login".into()
            },
            target_kind: Some("server".into()),
            target_id: Some(format!("srv-{}", i % 5)),
            ip: Some("192.0.2.1".into()),
            details: json!({"i": i, "nested": {"note": "it's \"fine\""}}),
        };
        all.push(s.insert_audit(ev).await.unwrap());
    }
    let q = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery {
            limit: 100,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let page = s.query_audit(q(|_| {})).await.unwrap();
    assert_eq!(page.items.len(), 25);
    assert!(page.next.is_none());
    assert!(
        page.items
            .windows(2)
            .all(|w| (w[0].ts, w[0].id) > (w[1].ts, w[1].id)),
        "newest first"
    );
    assert_eq!(
        page.items.iter().find(|e| e.id == all[7].id).unwrap(),
        &all[7]
    );

    let by_actor = s
        .query_audit(AuditQuery {
            actor_user_id: Some(alice.id),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_actor.items.len(), 25 - 9);
    let by_kind = s
        .query_audit(AuditQuery {
            actor_kind: Some(ActorKind::System),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_kind.items.len(), 9);
    let by_action = s
        .query_audit(q(|q| q.action = Some("user.login".into())))
        .await
        .unwrap();
    assert_eq!(by_action.items.len(), 12);
    let by_target = s
        .query_audit(q(|q| {
            q.target_kind = Some("server".into());
            q.target_id = Some("srv-0".into());
        }))
        .await
        .unwrap();
    assert_eq!(by_target.items.len(), 5);
    let range = s
        .query_audit(AuditQuery {
            from: Some(t0() + Duration::seconds(2)),
            to: Some(t0() + Duration::seconds(4)),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        range.items.len(),
        4,
        "ts 2,2,3,3 (from inclusive, to exclusive)"
    );

    // Cursor pagination in pages of 4 visits every event exactly once, in order.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let p = s
            .query_audit(AuditQuery {
                before,
                limit: 4,
                ..Default::default()
            })
            .await
            .unwrap();
        seen.extend(p.items.iter().map(|e| e.id));
        match p.next {
            Some(c) => before = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, page.items.iter().map(|e| e.id).collect::<Vec<_>>());

    // Combined filter + cursor.
    let p1 = s
        .query_audit(AuditQuery {
            action: Some("server.update".into()),
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    let p2 = s
        .query_audit(AuditQuery {
            action: Some("server.update".into()),
            before: p1.next,
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    let p3 = s
        .query_audit(AuditQuery {
            action: Some("server.update".into()),
            before: p2.next,
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((p1.items.len(), p2.items.len(), p3.items.len()), (5, 5, 3));
    assert!(p3.next.is_none());

    assert_eq!(
        s.prune_retention(RetentionCutoffs {
            audit_before: t0() + Duration::seconds(5),
            ..no_cutoffs()
        })
        .await
        .unwrap()
        .unwrap()
        .audit,
        10
    );
    assert_eq!(s.query_audit(q(|_| {})).await.unwrap().items.len(), 15);
}

pub(crate) async fn logs_at_scale(s: S) {
    let a = server(&s).await;
    let b = server(&s).await;
    const N: i64 = 200_000;
    const BATCH: i64 = 5_000;
    let levels = [
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
    ];
    let began = Instant::now();
    let mut seq = 0;
    while seq < N {
        let lines: Vec<NewLogLine> = (seq..seq + BATCH)
            .map(|i| NewLogLine {
                server_id: if i % 4 == 0 { b.id } else { a.id },
                seq: i,
                ts: t0() + Duration::milliseconds(i * 10),
                level: levels[(i % 5) as usize],
                text: if i % 10_000 == 1234 {
                    format!("Player \"Needle_{i}\" connected (100% legit_user)")
                } else {
                    format!("{:>8} Mission tick {i}: units={} fps=48.9 ÄÖÜ", i, i % 97)
                },
            })
            .collect();
        assert_eq!(store_logs(&s, lines).await.unwrap(), BATCH as u64);
        seq += BATCH;
    }
    let ins = began.elapsed();
    eprintln!(
        "[{}] inserted {N} log lines in batches of {BATCH}: {ins:?} ({:.0} lines/s)",
        s.backend(),
        N as f64 / ins.as_secs_f64()
    );
    assert_eq!(store_logs(&s, vec![]).await.unwrap(), 0);

    let timed = |label: &'static str, q: LogQuery| {
        let s = s.clone();
        async move {
            let t = Instant::now();
            let p = s.query_logs(q).await.unwrap();
            eprintln!(
                "[{}] query_logs {label}: {} rows in {:?}",
                s.backend(),
                p.items.len(),
                t.elapsed()
            );
            p
        }
    };

    let latest = timed(
        "latest 100 of server",
        LogQuery {
            server_id: Some(a.id),
            limit: 100,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(latest.items.len(), 100);
    assert!(
        latest
            .items
            .windows(2)
            .all(|w| (w[0].ts, w[0].id) > (w[1].ts, w[1].id))
    );
    assert!(latest.items.iter().all(|l| l.server_id == a.id));
    assert_eq!(latest.items[0].seq, N - 1);
    assert!(latest.next.is_some());

    let errors = timed(
        "level>=error",
        LogQuery {
            server_id: Some(a.id),
            min_level: Some(LogLevel::Error),
            limit: 50,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(errors.items.len(), 50);
    assert!(errors.items.iter().all(|l| l.level == LogLevel::Error));

    let from = t0() + Duration::seconds(100);
    let to = t0() + Duration::seconds(101);
    let window = timed(
        "1s window",
        LogQuery {
            server_id: None,
            from: Some(from),
            to: Some(to),
            limit: 1000,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        window.items.len(),
        100,
        "10 ms spacing -> 100 lines per second (from incl., to excl.)"
    );
    assert!(window.items.iter().all(|l| l.ts >= from && l.ts < to));

    let needle = timed(
        "text 'needle_' (rare, case-insensitive)",
        LogQuery {
            contains: Some("needle_".into()),
            limit: 100,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(needle.items.len(), 20);
    assert!(needle.items.iter().all(|l| l.text.contains("Needle_")));
    let pct = timed(
        "text '100% legit_' (LIKE metachars)",
        LogQuery {
            contains: Some("100% legit_".into()),
            limit: 100,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(pct.items.len(), 20);
    let none = timed(
        "text '100%% ' (no match)",
        LogQuery {
            contains: Some("0%%".into()),
            limit: 100,
            ..Default::default()
        },
    )
    .await;
    assert!(none.items.is_empty());
    let quoted = timed(
        "text with quote",
        LogQuery {
            contains: Some("\"Needle_1234\"".into()),
            limit: 100,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(quoted.items.len(), 1);
    let common = timed(
        "text 'mission tick' (common) server a",
        LogQuery {
            server_id: Some(a.id),
            contains: Some("mission tick".into()),
            limit: 200,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(common.items.len(), 200);
    let short = timed(
        "text 'äö' (2 chars, scan)",
        LogQuery {
            server_id: Some(b.id),
            contains: Some("ÄÖ".into()),
            limit: 10,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(short.items.len(), 10);
    let combo = timed(
        "server+level+range+text",
        LogQuery {
            server_id: Some(b.id),
            min_level: Some(LogLevel::Debug),
            from: Some(t0()),
            to: Some(t0() + Duration::seconds(600)),
            contains: Some("tick 4".into()),
            limit: 20,
            ..Default::default()
        },
    )
    .await;
    assert!(!combo.items.is_empty());
    assert!(
        combo
            .items
            .iter()
            .all(|l| l.server_id == b.id && l.text.contains("tick 4"))
    );

    // Cursor pagination over a window.
    let mut before = None;
    let mut ids = HashSet::new();
    loop {
        let p = s
            .query_logs(LogQuery {
                server_id: Some(b.id),
                from: Some(from),
                to: Some(to),
                before,
                limit: 7,
                ..Default::default()
            })
            .await
            .unwrap();
        for l in &p.items {
            assert!(ids.insert(l.id));
        }
        match p.next {
            Some(c) => before = Some(c),
            None => break,
        }
    }
    assert_eq!(ids.len(), 25);

    let t = Instant::now();
    let pruned = s
        .prune_retention(RetentionCutoffs {
            logs_before: t0() + Duration::seconds(1000),
            ..no_cutoffs()
        })
        .await
        .unwrap()
        .unwrap()
        .logs;
    eprintln!(
        "[{}] prune logs: {pruned} rows in {:?}",
        s.backend(),
        t.elapsed()
    );
    assert_eq!(pruned, 100_000);
    let rest = s
        .query_logs(LogQuery {
            from: None,
            to: Some(t0() + Duration::seconds(1000)),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(rest.items.is_empty());
    // The search index follows deletions.
    assert_eq!(
        s.query_logs(LogQuery {
            contains: Some("needle_".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .items
        .len(),
        10
    );
}

pub(crate) async fn metrics(s: S) {
    let srv = server(&s).await;
    let h = s.get_host(srv.host_id).await.unwrap().unwrap();
    let samples: Vec<NewMetricSample> = (0..1200)
        .map(|i| NewMetricSample {
            server_id: if i % 2 == 0 { Some(srv.id) } else { None },
            host_id: if i % 2 == 1 { Some(h.id) } else { None },
            ts: Some(t0() + Duration::seconds(i)),
            cpu_percent: Some(12.5),
            rss_bytes: Some(1 << 33),
            players: Some(i % 60),
            fps: Some(47.25),
        })
        .collect();
    assert_eq!(store_metrics(&s, samples).await.unwrap(), 1200);
    assert_eq!(
        store_metrics(
            &s,
            vec![NewMetricSample {
                server_id: Some(srv.id),
                ..Default::default()
            }]
        )
        .await
        .unwrap(),
        1
    );
    let m = s
        .query_metrics(MetricQuery {
            server_id: Some(srv.id),
            to: Some(t0() + Duration::seconds(100)),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(m.len(), 50);
    assert!(m.windows(2).all(|w| w[0].ts < w[1].ts), "oldest first");
    assert_eq!(
        (m[0].cpu_percent, m[0].rss_bytes, m[0].players, m[0].fps),
        (Some(12.5), Some(1 << 33), Some(0), Some(47.25))
    );
    let hm = s
        .query_metrics(MetricQuery {
            host_id: Some(h.id),
            from: Some(t0() + Duration::seconds(1000)),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(hm.len(), 100);
    assert_eq!(
        s.query_metrics(MetricQuery {
            server_id: Some(srv.id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .len(),
        10
    );
    assert_eq!(
        s.prune_retention(RetentionCutoffs {
            metrics_before: t0() + Duration::seconds(600),
            ..no_cutoffs()
        })
        .await
        .unwrap()
        .unwrap()
        .metrics,
        600
    );
    assert_eq!(
        s.query_metrics(MetricQuery {
            host_id: Some(h.id),
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .len(),
        300
    );
}

pub(crate) async fn hostile_strings(s: S) {
    let nasty = [
        "Robert'); DROP TABLE users;--",
        "double \"quotes\" and 'single' and `back` and \\backslash\\",
        "emoji 🎮🔥👩‍👩‍👧 and RTL \u{202e}txet and zero-width\u{200b}",
        "percent % underscore _ star * caret ^ dollar $1 ?1 :name",
        "line1\nline2\r\n\ttab",
    ];
    for (i, txt) in nasty.iter().enumerate() {
        let u = s
            .create_user(NewUser {
                username: format!("{txt}{i}"),
                password_hash: txt.to_string(),
                role: Role::Viewer,
                must_change_password: false,
            })
            .await
            .unwrap();
        let back = s.get_user_by_username(&u.username).await.unwrap().unwrap();
        assert_eq!(back.username, format!("{txt}{i}"));
        assert_eq!(back.password_hash, *txt);
    }
    assert_eq!(s.count_users().await.unwrap(), nasty.len() as i64);
    // Wildcards in a username lookup are literals.
    assert!(s.get_user_by_username("percent %").await.unwrap().is_none());

    let big: String = "Aö🎮'\"".repeat(100 * 1024 / 12);
    assert!(big.len() >= 100 * 1024 / 2);
    let srv = server(&s).await;
    store_logs(
        &s,
        vec![NewLogLine {
            server_id: srv.id,
            seq: 1,
            ts: t0(),
            level: LogLevel::Info,
            text: big.clone(),
        }],
    )
    .await
    .unwrap();
    let got = s
        .query_logs(LogQuery {
            server_id: Some(srv.id),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(got.items[0].text, big);

    let details = json!({"quote": nasty[0], "emoji": nasty[2], "big": big, "nested": [nasty[3], {"k'ey\"": nasty[4]}]});
    let ev = s
        .insert_audit(NewAuditEvent {
            ts: None,
            actor_user_id: None,
            actor_kind: ActorKind::Agent,
            action: nasty[1].into(),
            target_kind: Some(nasty[2].into()),
            target_id: Some(nasty[0].into()),
            ip: None,
            details: details.clone(),
        })
        .await
        .unwrap();
    let p = s
        .query_audit(AuditQuery {
            action: Some(nasty[1].into()),
            target_id: Some(nasty[0].into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(p.items, vec![ev]);
    assert_eq!(p.items[0].details, details);

    let v = s
        .save_config(
            srv.id,
            0,
            vec![sec(
                "server",
                json!({"motd": nasty, "big": big}),
                Some(big.as_bytes()),
            )],
            None,
            Some(nasty[2].into()),
        )
        .await
        .unwrap();
    assert_eq!(s.get_config_version(srv.id, 1).await.unwrap().unwrap(), v);

    // NUL is refused the same way on both backends, and nothing is written.
    let nul = s
        .create_user(NewUser {
            username: "nul\0user".into(),
            password_hash: "h".into(),
            role: Role::Viewer,
            must_change_password: false,
        })
        .await;
    assert!(matches!(nul, Err(StoreError::InvalidInput(_))), "{nul:?}");
    // (Agent log lines are scrubbed instead: see ingest_logs_nul_and_ack.)
    let nul = s
        .save_config(
            srv.id,
            1,
            vec![sec("basic", json!({"x": ["ok", "bad\u{0}"]}), None)],
            None,
            None,
        )
        .await;
    assert!(matches!(nul, Err(StoreError::InvalidInput(_))));
    assert_eq!(s.get_config(srv.id).await.unwrap().revision, 1);
    assert_eq!(s.count_users().await.unwrap(), nasty.len() as i64);
}
