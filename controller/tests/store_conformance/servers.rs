//! Hosts and servers, port claims, desired state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

pub(crate) async fn hosts_and_servers(s: S) {
    let h1 = host(&s, "alpha").await;
    let h2 = host(&s, "beta").await;
    assert!(matches!(
        s.create_host(NewHost {
            name: "alpha".into(),
            agent_id: None,
            os: HostOs::Windows,
            status: HostStatus::Pending
        })
        .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.get_host(h1.id).await.unwrap().unwrap(), h1);
    assert!(s.get_host(Uuid::new_v4()).await.unwrap().is_none());
    assert_eq!(s.list_hosts().await.unwrap(), vec![h1.clone(), h2.clone()]);
    let mut h1b = h1.clone();
    h1b.status = HostStatus::Online;
    h1b.agent_id = Some("agent-1".into());
    h1b.last_seen_at = Some(now());
    assert_eq!(s.update_host(&h1b).await.unwrap(), h1b);
    let mut ghost = h1b.clone();
    ghost.id = Uuid::new_v4();
    assert!(matches!(
        s.update_host(&ghost).await,
        Err(StoreError::NotFound)
    ));

    let a = s
        .create_server(h1.id, spec("main", 2302), &ports_of(&spec("main", 2302)))
        .await
        .unwrap();
    assert_eq!(a.revision, 1);
    assert!(matches!(
        s.create_server(h1.id, spec("main", 2402), &ports_of(&spec("main", 2402)))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let b = s
        .create_server(h2.id, spec("main", 2302), &ports_of(&spec("main", 2302)))
        .await
        .unwrap();
    let c = s
        .create_server(h1.id, spec("coop", 2502), &ports_of(&spec("coop", 2502)))
        .await
        .unwrap();
    assert!(matches!(
        s.create_server(Uuid::new_v4(), spec("x", 1), &ports_of(&spec("x", 1)))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.get_server(a.id).await.unwrap().unwrap(), a);
    assert!(s.get_server(Uuid::new_v4()).await.unwrap().is_none());
    assert_eq!(s.list_servers(None).await.unwrap().len(), 3);
    assert_eq!(
        s.list_servers(Some(h1.id)).await.unwrap(),
        vec![c.clone(), a.clone()]
    );
    assert_eq!(
        s.list_servers_on_host(h2.id).await.unwrap(),
        vec![b.clone()]
    );

    let mut sp = spec("main", 2602);
    sp.desired_running = true;
    sp.restart_policy = json!({"mode": "always"});
    let a2 = s
        .update_server(a.id, 1, sp.clone(), &ports_of(&sp.clone()))
        .await
        .unwrap();
    assert_eq!(
        (a2.revision, a2.game_port, a2.desired_running),
        (2, 2602, true)
    );
    assert_eq!(a2.restart_policy, json!({"mode": "always"}));
    assert!(matches!(
        s.update_server(a.id, 1, sp.clone(), &ports_of(&sp.clone()))
            .await,
        Err(StoreError::StaleRevision)
    ));
    assert!(matches!(
        s.update_server(Uuid::new_v4(), 1, sp.clone(), &ports_of(&sp.clone()))
            .await,
        Err(StoreError::NotFound)
    ));
    // Renaming onto an existing name on the same host is a conflict.
    assert!(matches!(
        s.update_server(c.id, 1, spec("main", 1), &ports_of(&spec("main", 1)))
            .await,
        Err(StoreError::Conflict(_))
    ));

    let r = s.delete_host(h2.id).await;
    assert!(
        matches!(r, Err(StoreError::Conflict(_))),
        "host with servers: {r:?}"
    );
    s.delete_server(b.id).await.unwrap();
    assert!(matches!(
        s.delete_server(b.id).await,
        Err(StoreError::NotFound)
    ));
    s.delete_host(h2.id).await.unwrap();
    assert!(matches!(
        s.delete_host(h2.id).await,
        Err(StoreError::NotFound)
    ));
}

pub(crate) fn palworld(name: &str, port: i64, rcon: i64) -> ServerSpec {
    ServerSpec {
        name: name.into(),
        game: GameKind::Palworld,
        game_port: port,
        rcon_port: rcon,
        executable_path: "PalServer.sh".into(),
        restart_policy: json!({}),
        desired_running: false,
    }
}

pub(crate) fn is_port_conflict(r: &StoreResult<Server>, port: i64) -> bool {
    matches!(r, Err(StoreError::Conflict(w)) if *w == format!("port {port}"))
}

pub(crate) async fn server_count_and_port_guard(s: S) {
    // The store claims exactly the ports it is given (duplicates ignored), not what it
    // could derive from the game.
    let h3 = host(&s, "p3").await;
    s.create_server(h3.id, palworld("x", 9100, 9101), &[9100, 9100, 9500])
        .await
        .unwrap();
    let r = s
        .create_server(h3.id, palworld("y", 9200, 9201), &[9200, 9500])
        .await;
    assert!(is_port_conflict(&r, 9500), "{r:?}");
    s.create_server(h3.id, palworld("y", 9101, 9201), &[9101, 9201])
        .await
        .unwrap();
    s.delete_server(s.list_servers_on_host(h3.id).await.unwrap()[0].id)
        .await
        .unwrap();
    s.delete_server(s.list_servers_on_host(h3.id).await.unwrap()[0].id)
        .await
        .unwrap();
    let h1 = host(&s, "p1").await;
    let h2 = host(&s, "p2").await;
    assert_eq!(s.count_servers(None).await.unwrap(), 0);
    // a: 2302..=2306 (+ rcon 2304 inside the range).
    let a = s
        .create_server(h1.id, spec("a", 2302), &ports_of(&spec("a", 2302)))
        .await
        .unwrap();
    // Overlaps a's range at 2306 (game port of b) -> conflict; nothing of b is kept.
    let r = s
        .create_server(h1.id, spec("b", 2306), &ports_of(&spec("b", 2306)))
        .await;
    assert!(is_port_conflict(&r, 2306), "{r:?}");
    // RCon port inside a's range.
    let r = s
        .create_server(
            h1.id,
            palworld("pw", 8211, 2305),
            &ports_of(&palworld("pw", 8211, 2305)),
        )
        .await;
    assert!(is_port_conflict(&r, 2305), "{r:?}");
    assert_eq!(s.count_servers(Some(h1.id)).await.unwrap(), 1);
    // The failed creates left no ports behind: 2307.. and 8211 are free.
    let b = s
        .create_server(h1.id, spec("b", 2307), &ports_of(&spec("b", 2307)))
        .await
        .unwrap();
    let pw = s
        .create_server(
            h1.id,
            palworld("pw", 8211, 25575),
            &ports_of(&palworld("pw", 8211, 25575)),
        )
        .await
        .unwrap();
    // The same ports on another host are fine.
    s.create_server(h2.id, spec("a", 2302), &ports_of(&spec("a", 2302)))
        .await
        .unwrap();
    assert_eq!(s.count_servers(None).await.unwrap(), 4);
    assert_eq!(s.count_servers(Some(h1.id)).await.unwrap(), 3);
    assert_eq!(s.count_servers(Some(h2.id)).await.unwrap(), 1);
    assert_eq!(s.count_servers(Some(Uuid::new_v4())).await.unwrap(), 0);

    // Update: moving b onto a's ports conflicts and changes nothing.
    let r = s
        .update_server(
            b.id,
            b.revision,
            spec("b", 2300),
            &ports_of(&spec("b", 2300)),
        )
        .await;
    assert!(is_port_conflict(&r, 2302), "{r:?}");
    assert_eq!(s.get_server(b.id).await.unwrap().unwrap(), b);
    // b still holds 2307..: a third server cannot take 2309.
    let r = s
        .create_server(
            h1.id,
            palworld("c", 2309, 9000),
            &ports_of(&palworld("c", 2309, 9000)),
        )
        .await;
    assert!(is_port_conflict(&r, 2309), "{r:?}");
    // Moving a away frees its old ports, and claims the new ones.
    let a2 = s
        .update_server(
            a.id,
            a.revision,
            spec("a", 2402),
            &ports_of(&spec("a", 2402)),
        )
        .await
        .unwrap();
    let b2 = s
        .update_server(
            b.id,
            b.revision,
            spec("b", 2300),
            &ports_of(&spec("b", 2300)),
        )
        .await
        .unwrap();
    assert_eq!((a2.game_port, b2.game_port), (2402, 2300));
    let r = s
        .create_server(
            h1.id,
            palworld("c", 2404, 9000),
            &ports_of(&palworld("c", 2404, 9000)),
        )
        .await;
    assert!(is_port_conflict(&r, 2404), "{r:?}");
    // Keeping its own ports on update is not a conflict with itself.
    let a3 = s
        .update_server(
            a.id,
            a2.revision,
            spec("a-renamed", 2402),
            &ports_of(&spec("a-renamed", 2402)),
        )
        .await
        .unwrap();
    assert_eq!(a3.revision, a2.revision + 1);
    // Deleting a server frees its ports.
    s.delete_server(pw.id).await.unwrap();
    s.create_server(
        h1.id,
        palworld("pw2", 25575, 8211),
        &ports_of(&palworld("pw2", 25575, 8211)),
    )
    .await
    .unwrap();
    assert_eq!(s.count_servers(Some(h1.id)).await.unwrap(), 3);
}

pub(crate) async fn server_port_race_one_wins(s: S) {
    let h = host(&s, "race").await;
    // 5 creates whose ranges (2302 + i ..= 2306 + i) all overlap pairwise: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..5i64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.create_server(
                h.id,
                spec(&format!("r{i}"), 2302 + i),
                &ports_of(&spec(&format!("r{i}"), 2302 + i)),
            )
            .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict(w)) => assert!(w.starts_with("port "), "{w}"),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(s.count_servers(Some(h.id)).await.unwrap(), 1);
}

/// `set_desired_running` changes that one column: no revision bump, no port re-claim, and
/// it works on a server whose spec changed meanwhile.
pub(crate) async fn set_desired_running_touches_nothing_else(s: S) {
    let srv = server(&s).await;
    assert!(!srv.desired_running);
    s.set_desired_running(srv.id, true).await.unwrap();
    let got = s.get_server(srv.id).await.unwrap().unwrap();
    assert_eq!(
        got,
        Server {
            desired_running: true,
            ..srv.clone()
        }
    );
    // The cached list sees the write at once.
    let all = s.list_all_servers().await.unwrap();
    assert!(all.iter().any(|x| x.id == srv.id && x.desired_running));
    // A spec update with the unchanged revision still works (no bump happened).
    let mut sp = spec("main", 2302);
    sp.desired_running = true;
    let up = s
        .update_server(srv.id, srv.revision, sp.clone(), &ports_of(&sp))
        .await
        .unwrap();
    assert_eq!(up.revision, srv.revision + 1);
    s.set_desired_running(srv.id, false).await.unwrap();
    assert!(!s.get_server(srv.id).await.unwrap().unwrap().desired_running);
    assert!(matches!(
        s.set_desired_running(Uuid::new_v4(), true).await,
        Err(StoreError::NotFound)
    ));
}
