//! Retention runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

pub(crate) async fn retention_prunes_old_keeps_recent(s: S) {
    let srv = server(&s).await;
    let u = user(&s, "ret").await;
    let t = now();
    let old = t - Duration::days(40);
    let recent = t - Duration::days(1);
    store_logs(
        &s,
        [old, recent]
            .iter()
            .enumerate()
            .map(|(i, ts)| NewLogLine {
                server_id: srv.id,
                seq: i as i64,
                ts: *ts,
                level: LogLevel::Info,
                text: format!("line {i}"),
            })
            .collect(),
    )
    .await
    .unwrap();
    store_metrics(
        &s,
        [old, recent]
            .iter()
            .map(|ts| NewMetricSample {
                server_id: Some(srv.id),
                ts: Some(*ts),
                players: Some(1),
                ..Default::default()
            })
            .collect(),
    )
    .await
    .unwrap();
    for ts in [old, recent] {
        s.insert_audit(NewAuditEvent {
            ts: Some(ts),
            actor_user_id: None,
            actor_kind: ActorKind::System,
            action: "test.retention".into(),
            target_kind: None,
            target_id: None,
            ip: None,
            details: json!({}),
        })
        .await
        .unwrap();
    }
    let join = |account: &str, at: OffsetDateTime| SessionChange::Join {
        server_id: srv.id,
        account: account.into(),
        name: account.into(),
        ip: None,
        at,
    };
    let leave = |account: &str, at: OffsetDateTime| SessionChange::Leave {
        server_id: srv.id,
        account: Some(account.into()),
        name: account.into(),
        at,
    };
    store_sessions(
        &s,
        srv.host_id,
        vec![
            join("guid-ret", old),
            leave("guid-ret", old + Duration::hours(1)),
            // Old but still open: kept (the player is on the server).
            join("guid-ret", old),
            join("guid-ret2", recent),
            leave("guid-ret2", recent + Duration::hours(1)),
        ],
    )
    .await;
    let before = s
        .list_player_sessions(SessionQuery {
            server_id: Some(srv.id),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(before.len(), 3);
    let old_open = before.iter().find(|x| x.left_at.is_none()).unwrap().clone();
    let recent_closed = before
        .iter()
        .find(|x| x.joined_at == recent)
        .unwrap()
        .clone();
    let fam = Uuid::new_v4();
    let mut expired = new_rt(u.id, fam, "rt-expired");
    expired.expires_at = t - Duration::hours(1);
    s.insert_refresh_token(expired).await.unwrap();
    let mut live = new_rt(u.id, fam, "rt-live");
    live.expires_at = t + Duration::days(1);
    s.insert_refresh_token(live).await.unwrap();

    let cut = t - Duration::days(30);
    let cutoffs = RetentionCutoffs {
        logs_before: cut,
        metrics_before: cut,
        audit_before: cut,
        sessions_before: cut,
        refresh_tokens_before: t,
        events_before: cut,
        rollups_before: cut,
        join_tokens_before: t - Duration::days(1),
    };
    let report = s
        .prune_retention(cutoffs)
        .await
        .unwrap()
        .expect("not locked");
    assert_eq!(
        report,
        PruneReport {
            logs: 1,
            metrics: 1,
            audit: 1,
            sessions: 1,
            refresh_tokens: 1,
            // The old sample's 1-minute, 5-minute and 1-hour buckets.
            rollups: 3,
            ..PruneReport::default()
        }
    );
    let logs = s
        .query_logs(LogQuery {
            server_id: Some(srv.id),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(logs.items.len(), 1);
    assert_eq!(logs.items[0].ts, recent);
    let m = s
        .query_metrics(MetricQuery {
            server_id: Some(srv.id),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].ts, recent);
    let a = s
        .query_audit(AuditQuery {
            action: Some("test.retention".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(a.items.len(), 1);
    assert_eq!(a.items[0].ts, recent);
    let sessions: HashSet<Uuid> = s
        .list_player_sessions(SessionQuery {
            server_id: Some(srv.id),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(sessions, HashSet::from([old_open.id, recent_closed.id]));
    assert!(
        s.get_refresh_token_by_hash("rt-expired")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.get_refresh_token_by_hash("rt-live")
            .await
            .unwrap()
            .is_some()
    );
    // A second run finds nothing.
    assert_eq!(
        s.prune_retention(cutoffs).await.unwrap(),
        Some(PruneReport::default())
    );
}

/// PostgreSQL: while another session holds the retention lock, a run prunes nothing and
/// reports `None`; once released, the run proceeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn postgres_retention_lock_skips_when_held() {
    run_pg_url(|s, url| async move {
        use sqlx::Connection;
        let srv = server(&s).await;
        store_logs(
            &s,
            vec![NewLogLine {
                server_id: srv.id,
                seq: 1,
                ts: now() - Duration::days(90),
                level: LogLevel::Info,
                text: "old".into(),
            }],
        )
        .await
        .unwrap();
        let t = now();
        let cutoffs = RetentionCutoffs {
            logs_before: t,
            metrics_before: t,
            audit_before: t - Duration::days(1),
            sessions_before: t,
            refresh_tokens_before: t,
            events_before: t,
            rollups_before: t,
            join_tokens_before: t,
        };
        let mut other = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(RETENTION_LOCK_KEY)
            .execute(&mut other)
            .await
            .unwrap();
        assert_eq!(s.prune_retention(cutoffs).await.unwrap(), None);
        let q = LogQuery {
            server_id: Some(srv.id),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(s.query_logs(q.clone()).await.unwrap().items.len(), 1);
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(RETENTION_LOCK_KEY)
            .execute(&mut other)
            .await
            .unwrap();
        let r = s
            .prune_retention(cutoffs)
            .await
            .unwrap()
            .expect("lock free");
        assert_eq!(r.logs, 1);
        assert!(s.query_logs(q).await.unwrap().items.is_empty());
        // The run released its transaction lock: another session can take it.
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(RETENTION_LOCK_KEY)
            .fetch_one(&mut other)
            .await
            .unwrap();
        assert!(got);
    })
    .await;
}

/// Like `run_pg`, also passing the database URL.
pub(crate) async fn run_pg_url<F, Fut>(f: F)
where
    F: FnOnce(S, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if std::env::var("LANGUARD_TEST_PG").as_deref() == Ok("skip") {
        eprintln!("LANGUARD_TEST_PG=skip: PostgreSQL variant skipped");
        return;
    }
    use sqlx::Connection;
    let admin_url = pg_admin_url();
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    let name = format!("languard_t_{}", Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");
    let res = match connect(&url).await {
        Ok(store) => tokio::spawn(f(store, url))
            .await
            .map_err(|e| e.into_panic()),
        Err(e) => Err(Box::new(format!("connect failed: {e:?}")) as Box<dyn std::any::Any + Send>),
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    if let Err(p) = res {
        std::panic::resume_unwind(p);
    }
}

pub(crate) async fn retention_prunes_link_history(s: S) {
    let srv = server(&s).await;
    let t = now();
    let mut b = batch(srv.host_id, 1);
    b.events = [t - Duration::days(40), t - Duration::days(1)]
        .iter()
        .enumerate()
        .map(|(i, ts)| NewServerEvent {
            ts: *ts,
            ..event(&srv, i as i64, "status")
        })
        .collect();
    b.metrics = [
        t - Duration::days(400),
        t - Duration::days(40),
        t - Duration::days(1),
    ]
    .iter()
    .map(|ts| NewMetricSample {
        server_id: Some(srv.id),
        ts: Some(*ts),
        players: Some(1),
        ..Default::default()
    })
    .collect();
    s.ingest(b).await.unwrap();
    let long_expired = s
        .insert_join_token(new_join_token(srv.host_id, t - Duration::days(2)))
        .await
        .unwrap();
    let just_expired = s
        .insert_join_token(new_join_token(srv.host_id, t - Duration::hours(1)))
        .await
        .unwrap();
    let cutoffs = RetentionCutoffs {
        logs_before: t - Duration::days(30),
        metrics_before: t - Duration::days(30),
        audit_before: t - Duration::days(30),
        sessions_before: t - Duration::days(30),
        refresh_tokens_before: t,
        events_before: t - Duration::days(30),
        rollups_before: t - Duration::days(365),
        join_tokens_before: t - Duration::days(1),
    };
    let report = s.prune_retention(cutoffs).await.unwrap().unwrap();
    assert_eq!(
        report,
        PruneReport {
            metrics: 2,
            events: 1,
            // The 400-day-old sample's three buckets, the 40-day-old one's 1-minute bucket.
            rollups: 4,
            join_tokens: 1,
            ..PruneReport::default()
        }
    );
    let ev = events_of(&s, Some(srv.id), None).await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].ts, t - Duration::days(1));
    let mut kept = Vec::new();
    for secs in ROLLUP_BUCKETS {
        kept.push(
            rollups_of(&s, Some(srv.id), None, secs)
                .await
                .unwrap()
                .len(),
        );
    }
    assert_eq!(kept, [1, 2, 2]);
    assert!(s.get_join_token(long_expired.id).await.unwrap().is_none());
    assert!(s.get_join_token(just_expired.id).await.unwrap().is_some());
    assert_eq!(
        s.prune_retention(cutoffs).await.unwrap(),
        Some(PruneReport::default())
    );
}
