//! API token lineage (migration 0006) and refresh-family revocation (issue 10).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn new_token(
    user: Uuid,
    hash: &str,
    parent: Option<Uuid>,
    expires: Option<OffsetDateTime>,
) -> NewApiToken {
    NewApiToken {
        user_id: user,
        name: hash.into(),
        token_hash: hash.into(),
        prefix: "lgd_ab12".into(),
        role: Role::Viewer,
        expires_at: expires,
        parent_id: parent,
    }
}

pub(crate) async fn api_token_lineage(s: S) {
    let u = user(&s, "lin").await;
    let other = user(&s, "other").await;
    let later = Some(now() + Duration::days(30));
    let root = s
        .insert_api_token(new_token(u.id, "root", None, later))
        .await
        .unwrap();
    assert_eq!(root.parent_id, None);
    let child = s
        .insert_api_token(new_token(u.id, "child", Some(root.id), later))
        .await
        .unwrap();
    let grand = s
        .insert_api_token(new_token(u.id, "grand", Some(child.id), later))
        .await
        .unwrap();
    let sibling = s
        .insert_api_token(new_token(u.id, "sib", None, None))
        .await
        .unwrap();
    assert_eq!(s.get_api_token(grand.id).await.unwrap().unwrap(), grand);
    assert_eq!(s.get_api_token(Uuid::new_v4()).await.unwrap(), None);
    let t = now();
    assert_eq!(
        s.api_token_chain(grand.id, t).await.unwrap(),
        TokenChain {
            len: 3,
            dead: false
        }
    );
    assert_eq!(
        s.api_token_chain(Uuid::new_v4(), t).await.unwrap(),
        TokenChain {
            len: 0,
            dead: false
        }
    );
    // An expired ancestor kills the chain as of a later instant.
    let after = now() + Duration::days(31);
    assert!(s.api_token_chain(grand.id, after).await.unwrap().dead);
    // A parent of another user, or a missing one, is refused and stores nothing.
    for parent in [root.id, Uuid::new_v4()] {
        let owner = if parent == root.id { other.id } else { u.id };
        let r = s
            .insert_api_token(new_token(owner, "stray", Some(parent), later))
            .await;
        assert!(
            matches!(r, Err(StoreError::Conflict(ref w)) if w == API_TOKEN_PARENT),
            "{r:?}"
        );
    }
    assert!(s.get_api_token_by_hash("stray").await.unwrap().is_none());
    // Revoking the root revokes the line, not the sibling; revoking again is harmless.
    s.revoke_api_token(root.id, t).await.unwrap();
    for id in [root.id, child.id, grand.id] {
        assert_eq!(
            s.get_api_token(id).await.unwrap().unwrap().revoked_at,
            Some(t)
        );
    }
    assert_eq!(
        s.get_api_token(sibling.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
    s.revoke_api_token(root.id, now()).await.unwrap();
    assert_eq!(
        s.get_api_token(root.id).await.unwrap().unwrap().revoked_at,
        Some(t)
    );
    assert!(s.api_token_chain(grand.id, t).await.unwrap().dead);
    // A revoked parent mints nothing.
    let r = s
        .insert_api_token(new_token(u.id, "late", Some(child.id), later))
        .await;
    assert!(
        matches!(r, Err(StoreError::Conflict(ref w)) if w == API_TOKEN_PARENT),
        "{r:?}"
    );
    // An expired parent neither.
    let old = s
        .insert_api_token(new_token(
            u.id,
            "old",
            None,
            Some(now() + Duration::milliseconds(1)),
        ))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let r = s
        .insert_api_token(new_token(u.id, "kid", Some(old.id), None))
        .await;
    assert!(
        matches!(r, Err(StoreError::Conflict(ref w)) if w == API_TOKEN_PARENT),
        "{r:?}"
    );
    // All of a user's tokens at once: only the live ones count, other users untouched.
    let theirs = s
        .insert_api_token(new_token(other.id, "theirs", None, None))
        .await
        .unwrap();
    assert_eq!(s.revoke_user_api_tokens(u.id, now()).await.unwrap(), 2);
    assert!(
        s.get_api_token(sibling.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert_eq!(
        s.get_api_token(theirs.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
    // Deleting the user removes the whole tree (cascade), parents and children alike.
    s.delete_user(u.id).await.unwrap();
    assert!(s.get_api_token(grand.id).await.unwrap().is_none());
}

pub(crate) async fn refresh_family_revocation(s: S) {
    let u = user(&s, "fam").await;
    let fam = Uuid::new_v4();
    let other = Uuid::new_v4();
    s.insert_refresh_token(new_rt(u.id, fam, "f-1"))
        .await
        .unwrap();
    s.insert_refresh_token(new_rt(u.id, other, "o-1"))
        .await
        .unwrap();
    assert!(!s.refresh_family_revoked(fam).await.unwrap());
    assert!(!s.refresh_family_revoked(Uuid::new_v4()).await.unwrap());
    s.revoke_refresh_family(fam, now()).await.unwrap();
    assert!(s.refresh_family_revoked(fam).await.unwrap());
    assert!(!s.refresh_family_revoked(other).await.unwrap());
    s.revoke_user_refresh_tokens(u.id, now()).await.unwrap();
    assert!(s.refresh_family_revoked(other).await.unwrap());
}
