//! The player directory and sessions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

pub(crate) async fn players_and_sessions_of_any_game(s: S) {
    let arma = server(&s).await;
    let pw_host = host(&s, "pw-host").await;
    let pw = s
        .create_server(pw_host.id, palworld("pw", 8211, 25575), &[8211, 25575])
        .await
        .unwrap();
    let join =
        |server_id: Uuid, account: &str, name: &str, at: OffsetDateTime| SessionChange::Join {
            server_id,
            account: account.into(),
            name: name.into(),
            ip: Some("198.51.100.4".into()),
            at,
        };
    // The same account id in two games is two players; a second join of a player who is
    // on the server only renames / refreshes the player.
    store_sessions(
        &s,
        arma.host_id,
        vec![
            join(arma.id, "acc-1", "Miller", t0()),
            join(arma.id, "acc-1", "Miller2", t0() + Duration::hours(1)),
        ],
    )
    .await;
    store_sessions(&s, pw_host.id, vec![join(pw.id, "acc-1", "Kerry", t0())]).await;
    let players = s.list_players(None, 10).await.unwrap();
    assert_eq!(
        players
            .iter()
            .map(|p| (
                p.game,
                p.account_id.as_str(),
                p.last_name.as_str(),
                p.first_seen,
                p.last_seen
            ))
            .collect::<Vec<_>>(),
        vec![
            (
                GameKind::Arma3,
                "acc-1",
                "Miller2",
                t0(),
                t0() + Duration::hours(1)
            ),
            (GameKind::Palworld, "acc-1", "Kerry", t0(), t0()),
        ]
    );
    let (miller, kerry) = (players[0].clone(), players[1].clone());
    assert_eq!(
        s.list_players(Some("KER"), 10).await.unwrap(),
        vec![kerry.clone()]
    );
    assert_eq!(s.list_players(None, 1).await.unwrap(), vec![miller.clone()]);

    let sessions = |server_id: Option<Uuid>, player_id: Option<Uuid>, open_only: bool| {
        let s = s.clone();
        async move {
            s.list_player_sessions(SessionQuery {
                server_id,
                player_id,
                open_only,
                limit: 10,
            })
            .await
            .unwrap()
        }
    };
    let open = sessions(Some(arma.id), None, true).await;
    assert_eq!(
        open.len(),
        1,
        "one open session per (server, player): {open:?}"
    );
    assert_eq!(
        (open[0].player_id, open[0].joined_at, open[0].ip.as_deref()),
        (miller.id, t0(), Some("198.51.100.4"))
    );
    assert_eq!(sessions(None, Some(kerry.id), false).await.len(), 1);

    // Leave by account closes the session of that game's player only; a new join opens a
    // new session.
    store_sessions(
        &s,
        arma.host_id,
        vec![
            SessionChange::Leave {
                server_id: arma.id,
                account: Some("acc-1".into()),
                name: "Miller2".into(),
                at: t0() + Duration::hours(2),
            },
            join(arma.id, "acc-1", "Miller2", t0() + Duration::hours(3)),
        ],
    )
    .await;
    let mine = sessions(None, Some(miller.id), false).await;
    assert_eq!(
        mine.iter()
            .map(|x| (x.joined_at, x.left_at))
            .collect::<Vec<_>>(),
        vec![
            (t0() + Duration::hours(3), None),
            (t0(), Some(t0() + Duration::hours(2))),
        ]
    );
    assert_eq!(sessions(Some(pw.id), None, true).await.len(), 1);
    // CloseAll closes every open session of its server, no other.
    store_sessions(
        &s,
        arma.host_id,
        vec![SessionChange::CloseAll {
            server_id: arma.id,
            at: t0() + Duration::hours(4),
        }],
    )
    .await;
    assert!(sessions(Some(arma.id), None, true).await.is_empty());
    assert_eq!(sessions(Some(pw.id), None, true).await.len(), 1);
}
