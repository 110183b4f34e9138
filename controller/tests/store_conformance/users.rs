//! Users, refresh and API tokens, the last-admin guard.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

pub(crate) async fn users(s: S) {
    assert_eq!(s.count_users().await.unwrap(), 0);
    let a = s
        .create_user(NewUser {
            username: "Alice".into(),
            password_hash: "argon".into(),
            role: Role::Admin,
            must_change_password: true,
        })
        .await
        .unwrap();
    assert_eq!(s.get_user_by_id(a.id).await.unwrap().unwrap(), a);
    assert_eq!(
        s.get_user_by_username("aLICE").await.unwrap().unwrap().id,
        a.id
    );
    assert!(s.get_user_by_username("bob").await.unwrap().is_none());
    let dup = s
        .create_user(NewUser {
            username: "ALICE".into(),
            password_hash: "x".into(),
            role: Role::Viewer,
            must_change_password: false,
        })
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let b = user(&s, "bob").await;
    assert_eq!(s.count_users().await.unwrap(), 2);
    let list = s.list_users().await.unwrap();
    assert_eq!(
        list.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(),
        vec!["Alice", "bob"]
    );

    let u = s
        .update_user(
            b.id,
            UserUpdate {
                role: Some(Role::Viewer),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (
            u.role,
            u.disabled,
            u.must_change_password,
            u.password_hash.as_str()
        ),
        (Role::Viewer, false, false, "h")
    );
    let u = s
        .update_user(
            b.id,
            UserUpdate {
                role: None,
                disabled: Some(true),
                must_change_password: Some(true),
                password_hash: Some("new".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (
            u.role,
            u.disabled,
            u.must_change_password,
            u.password_hash.as_str()
        ),
        (Role::Viewer, true, true, "new")
    );
    assert!(u.updated_at >= b.updated_at);
    assert_eq!(s.get_user_by_id(b.id).await.unwrap().unwrap(), u);
    assert!(matches!(
        s.update_user(Uuid::new_v4(), UserUpdate::default()).await,
        Err(StoreError::NotFound)
    ));

    s.delete_user(b.id).await.unwrap();
    assert!(matches!(
        s.delete_user(b.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.count_users().await.unwrap(), 1);
}

pub(crate) fn new_rt(user_id: Uuid, family: Uuid, hash: &str) -> NewRefreshToken {
    NewRefreshToken {
        user_id,
        family_id: family,
        token_hash: hash.into(),
        expires_at: now() + Duration::days(7),
        ip: Some("203.0.113.7".into()),
        user_agent: Some("test/1.0".into()),
    }
}

pub(crate) async fn refresh_tokens(s: S) {
    let u = user(&s, "carol").await;
    let fam = Uuid::new_v4();
    let t1 = s
        .insert_refresh_token(new_rt(u.id, fam, "hash-1"))
        .await
        .unwrap();
    assert_eq!(
        s.get_refresh_token_by_hash("hash-1")
            .await
            .unwrap()
            .unwrap(),
        t1
    );
    assert!(s.get_refresh_token_by_hash("nope").await.unwrap().is_none());
    assert!(matches!(
        s.insert_refresh_token(new_rt(u.id, fam, "hash-1")).await,
        Err(StoreError::Conflict(_))
    ));
    // Unknown user -> foreign key conflict.
    assert!(matches!(
        s.insert_refresh_token(new_rt(Uuid::new_v4(), fam, "hash-x"))
            .await,
        Err(StoreError::Conflict(_))
    ));

    let at = now();
    assert!(s.mark_refresh_token_used(t1.id, at).await.unwrap());
    assert!(
        !s.mark_refresh_token_used(t1.id, at).await.unwrap(),
        "second use must be refused"
    );
    assert_eq!(
        s.get_refresh_token_by_hash("hash-1")
            .await
            .unwrap()
            .unwrap()
            .used_at,
        Some(at)
    );
    assert!(!s.mark_refresh_token_used(Uuid::new_v4(), at).await.unwrap());

    let t2 = s
        .insert_refresh_token(new_rt(u.id, fam, "hash-2"))
        .await
        .unwrap();
    let other = s
        .insert_refresh_token(new_rt(u.id, Uuid::new_v4(), "hash-3"))
        .await
        .unwrap();
    assert_eq!(s.revoke_refresh_family(fam, at).await.unwrap(), 2);
    assert_eq!(s.revoke_refresh_family(fam, at).await.unwrap(), 0);
    assert!(
        !s.mark_refresh_token_used(t2.id, at).await.unwrap(),
        "revoked token must not be usable"
    );
    assert_eq!(s.revoke_user_refresh_tokens(u.id, at).await.unwrap(), 1);
    assert!(
        s.get_refresh_token_by_hash("hash-3")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    let _ = other;

    // Retention: nothing expired yet, everything expired in 8 days.
    let tokens_before = |t: OffsetDateTime| RetentionCutoffs {
        refresh_tokens_before: t,
        ..no_cutoffs()
    };
    let pruned = |r: Option<PruneReport>| r.unwrap().refresh_tokens;
    assert_eq!(
        pruned(s.prune_retention(tokens_before(now())).await.unwrap()),
        0
    );
    assert_eq!(
        pruned(
            s.prune_retention(tokens_before(now() + Duration::days(8)))
                .await
                .unwrap()
        ),
        3
    );
    assert!(
        s.get_refresh_token_by_hash("hash-1")
            .await
            .unwrap()
            .is_none()
    );
}

pub(crate) async fn refresh_token_single_use_race(s: S) {
    let u = user(&s, "racer").await;
    let t = s
        .insert_refresh_token(new_rt(u.id, Uuid::new_v4(), "race"))
        .await
        .unwrap();
    let mut handles = Vec::new();
    for _ in 0..20 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            s.mark_refresh_token_used(t.id, now()).await.unwrap()
        }));
    }
    let mut wins = 0;
    for h in handles {
        wins += usize::from(h.await.unwrap());
    }
    assert_eq!(wins, 1, "exactly one racer may consume a refresh token");
}

pub(crate) async fn api_tokens(s: S) {
    let u = user(&s, "dave").await;
    let new = |name: &str, hash: &str| NewApiToken {
        user_id: u.id,
        name: name.into(),
        token_hash: hash.into(),
        prefix: "lg_ab12".into(),
        role: Role::Viewer,
        expires_at: Some(now() + Duration::days(30)),
        parent_id: None,
    };
    let a = s.insert_api_token(new("ci", "th-1")).await.unwrap();
    let b = s.insert_api_token(new("backup", "th-2")).await.unwrap();
    assert!(matches!(
        s.insert_api_token(new("dup", "th-1")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.get_api_token_by_hash("th-1").await.unwrap().unwrap(), a);
    assert!(s.get_api_token_by_hash("th-9").await.unwrap().is_none());
    assert_eq!(
        s.list_api_tokens_for_user(u.id).await.unwrap(),
        vec![a.clone(), b.clone()]
    );
    let at = now();
    s.touch_api_token(a.id, at).await.unwrap();
    assert_eq!(
        s.get_api_token_by_hash("th-1")
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(at)
    );
    s.revoke_api_token(b.id, at).await.unwrap();
    assert_eq!(
        s.get_api_token_by_hash("th-2")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(at)
    );
    assert!(matches!(
        s.revoke_api_token(Uuid::new_v4(), at).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.touch_api_token(Uuid::new_v4(), at).await,
        Err(StoreError::NotFound)
    ));
    // Deleting the user removes its tokens.
    s.delete_user(u.id).await.unwrap();
    assert!(s.list_api_tokens_for_user(u.id).await.unwrap().is_empty());
    assert!(s.get_api_token_by_hash("th-1").await.unwrap().is_none());
}

pub(crate) async fn admin(s: &S, name: &str) -> User {
    let u = user(s, name).await;
    s.update_user(
        u.id,
        UserUpdate {
            role: Some(Role::Admin),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

pub(crate) async fn tokens_valid_after_bumps(s: S) {
    let u = user(&s, "tva").await;
    assert_eq!(s.tokens_valid_after(u.id).await.unwrap(), Some(0));
    s.bump_tokens_valid_after(u.id, 1_700_000_000_000_000)
        .await
        .unwrap();
    assert_eq!(
        s.tokens_valid_after(u.id).await.unwrap(),
        Some(1_700_000_000_000_000)
    );
    // Never lowered.
    s.bump_tokens_valid_after(u.id, 5).await.unwrap();
    assert_eq!(
        s.tokens_valid_after(u.id).await.unwrap(),
        Some(1_700_000_000_000_000)
    );
    assert_eq!(s.tokens_valid_after(Uuid::new_v4()).await.unwrap(), None);
    assert!(matches!(
        s.bump_tokens_valid_after(Uuid::new_v4(), 1).await,
        Err(StoreError::NotFound)
    ));
    // Other user fields are untouched by a bump.
    let again = s.get_user_by_id(u.id).await.unwrap().unwrap();
    assert_eq!(again, u);
}

pub(crate) async fn last_admin_guard(s: S) {
    let a = admin(&s, "only-admin").await;
    let op = user(&s, "op").await;
    let last = |r: StoreResult<User>| matches!(r, Err(StoreError::Conflict(w)) if w == LAST_ADMIN);
    assert!(last(
        s.update_user(
            a.id,
            UserUpdate {
                role: Some(Role::Viewer),
                ..Default::default()
            }
        )
        .await
    ));
    assert!(last(
        s.update_user(
            a.id,
            UserUpdate {
                disabled: Some(true),
                ..Default::default()
            }
        )
        .await
    ));
    assert!(matches!(s.delete_user(a.id).await, Err(StoreError::Conflict(w)) if w == LAST_ADMIN));
    // Other changes of the last admin and changes of non-admins pass.
    s.update_user(
        a.id,
        UserUpdate {
            must_change_password: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.update_user(
        op.id,
        UserUpdate {
            disabled: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(matches!(
        s.update_user(
            Uuid::new_v4(),
            UserUpdate {
                role: Some(Role::Viewer),
                ..Default::default()
            }
        )
        .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.delete_user(Uuid::new_v4()).await,
        Err(StoreError::NotFound)
    ));
    // With a second enabled admin, the first can go.
    let b = admin(&s, "second-admin").await;
    s.update_user(
        a.id,
        UserUpdate {
            role: Some(Role::Operator),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(matches!(s.delete_user(b.id).await, Err(StoreError::Conflict(w)) if w == LAST_ADMIN));
    // A disabled admin does not count as the remaining admin.
    let c = admin(&s, "third-admin").await;
    s.update_user(
        c.id,
        UserUpdate {
            disabled: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(last(
        s.update_user(
            b.id,
            UserUpdate {
                role: Some(Role::Viewer),
                ..Default::default()
            }
        )
        .await
    ));
}

pub(crate) async fn last_admin_concurrent_demotions_one_fails(s: S) {
    for round in 0..6 {
        let a = admin(&s, &format!("a{round}")).await;
        let b = admin(&s, &format!("b{round}")).await;
        // Only a and b are enabled admins when the race starts.
        for u in s.list_users().await.unwrap() {
            if u.id != a.id && u.id != b.id && u.role == Role::Admin && !u.disabled {
                s.update_user(
                    u.id,
                    UserUpdate {
                        role: Some(Role::Viewer),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            }
        }
        let sa = s.clone();
        let ta = tokio::spawn(async move {
            sa.update_user(
                a.id,
                UserUpdate {
                    role: Some(Role::Viewer),
                    ..Default::default()
                },
            )
            .await
            .map(|_| ())
        });
        let sb = s.clone();
        let tb = tokio::spawn(async move {
            if round % 2 == 0 {
                sb.update_user(
                    b.id,
                    UserUpdate {
                        disabled: Some(true),
                        ..Default::default()
                    },
                )
                .await
                .map(|_| ())
            } else {
                sb.delete_user(b.id).await
            }
        });
        let (ra, rb) = (ta.await.unwrap(), tb.await.unwrap());
        assert!(
            ra.is_ok() != rb.is_ok(),
            "exactly one demotion must win: {ra:?} / {rb:?}"
        );
        for r in [&ra, &rb] {
            if let Err(e) = r {
                assert!(
                    matches!(e, StoreError::Conflict(w) if w == LAST_ADMIN),
                    "{e:?}"
                );
            }
        }
        let admins = s
            .list_users()
            .await
            .unwrap()
            .into_iter()
            .filter(|u| u.role == Role::Admin && !u.disabled)
            .count();
        assert_eq!(admins, 1);
    }
}
