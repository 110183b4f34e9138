//! Config sections and versions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

pub(crate) fn sec(kind: &str, content: serde_json::Value, secrets: Option<&[u8]>) -> ConfigSection {
    ConfigSection {
        section: kind.into(),
        content,
        secrets: secrets.map(<[u8]>::to_vec),
    }
}

pub(crate) async fn config_save_and_versions(s: S) {
    let srv = server(&s).await;
    let author = user(&s, "editor").await;
    let c0 = s.get_config(srv.id).await.unwrap();
    assert_eq!((c0.revision, c0.sections.len()), (0, 0));
    assert!(matches!(
        s.get_config(Uuid::new_v4()).await,
        Err(StoreError::NotFound)
    ));

    let v1 = s
        .save_config(
            srv.id,
            0,
            vec![
                sec("server", json!({"hostname": "My \"server\"", "missions": [{"template": "co10.Altis", "difficulty": "veteran"}]}), Some(&[1, 2, 3, 0, 255])),
                sec("basic", json!({"MaxMsgSend": 128}), None),
            ],
            Some(author.id),
            Some("first".into()),
        )
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    let c1 = s.get_config(srv.id).await.unwrap();
    assert_eq!(c1.revision, 1);
    assert_eq!(c1.sections.len(), 2);
    // Ordered by name.
    assert_eq!(kinds(&c1), ["basic", "server"]);
    assert_eq!(
        c1.sections[1].section.secrets.as_deref(),
        Some(&[1u8, 2, 3, 0, 255][..])
    );
    assert_eq!(c1.sections[0].section.secrets, None);
    assert!(c1.sections.iter().all(|x| x.revision == 1));

    // Stale revision -> conflict, nothing changes.
    let stale = s
        .save_config(srv.id, 0, vec![sec("basic", json!({}), None)], None, None)
        .await;
    assert!(matches!(stale, Err(StoreError::StaleRevision)), "{stale:?}");
    assert!(matches!(
        s.save_config(Uuid::new_v4(), 0, vec![], None, None).await,
        Err(StoreError::NotFound)
    ));

    // Second save updates one section, adds another; snapshot holds all three.
    let v2 = s
        .save_config(
            srv.id,
            1,
            vec![
                sec("server", json!({"hostname": "renamed"}), Some(&[9, 9])),
                sec("rcon", json!({"port": 2306}), Some(&[7])),
            ],
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.sections.len(), 3);
    let c2 = s.get_config(srv.id).await.unwrap();
    assert_eq!(c2.revision, 2);
    let basic = c2
        .sections
        .iter()
        .find(|x| x.section.section == "basic")
        .unwrap();
    assert_eq!(basic.revision, 1, "untouched section keeps its revision");

    let list = s.list_config_versions(srv.id, 10).await.unwrap();
    assert_eq!(
        list.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![2, 1]
    );
    assert_eq!(list[1].author_user_id, Some(author.id));
    assert_eq!(list[1].comment.as_deref(), Some("first"));
    assert_eq!(s.list_config_versions(srv.id, 1).await.unwrap().len(), 1);

    let got1 = s.get_config_version(srv.id, 1).await.unwrap().unwrap();
    assert_eq!(got1, v1);
    assert_eq!(
        got1.sections[1].secrets.as_deref(),
        Some(&[1u8, 2, 3, 0, 255][..])
    );
    assert_eq!(s.get_config_version(srv.id, 2).await.unwrap().unwrap(), v2);
    assert!(s.get_config_version(srv.id, 3).await.unwrap().is_none());

    // Rollback = save the old snapshot as a new version.
    let v3 = s
        .save_config(
            srv.id,
            2,
            got1.sections.clone(),
            None,
            Some("rollback to 1".into()),
        )
        .await
        .unwrap();
    assert_eq!(v3.version, 3);
    let c3 = s.get_config(srv.id).await.unwrap();
    let server_sec = c3
        .sections
        .iter()
        .find(|x| x.section.section == "server")
        .unwrap();
    assert_eq!(server_sec.section, got1.sections[1]);

    // Deleting the user keeps the version, author becomes NULL.
    s.delete_user(author.id).await.unwrap();
    assert_eq!(
        s.get_config_version(srv.id, 1)
            .await
            .unwrap()
            .unwrap()
            .author_user_id,
        None
    );
}

pub(crate) async fn config_parallel_one_wins(s: S) {
    let srv = server(&s).await;
    s.save_config(
        srv.id,
        0,
        vec![sec("basic", json!({"n": 0}), None)],
        None,
        None,
    )
    .await
    .unwrap();
    let mut hs = Vec::new();
    for i in 0..100 {
        let s = s.clone();
        hs.push(tokio::spawn(async move {
            s.save_config(
                srv.id,
                1,
                vec![sec("basic", json!({"n": i}), None)],
                None,
                None,
            )
            .await
        }));
    }
    let (mut ok, mut conflict) = (0, 0);
    for h in hs {
        match h.await.unwrap() {
            Ok(v) => {
                assert_eq!(v.version, 2);
                ok += 1;
            }
            Err(StoreError::StaleRevision) => conflict += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((ok, conflict), (1, 99));
    assert_eq!(s.get_config(srv.id).await.unwrap().revision, 2);
}

pub(crate) async fn config_parallel_retry_loses_nothing(s: S) {
    let srv = server(&s).await;
    let start = s.get_config(srv.id).await.unwrap().revision;
    let began = Instant::now();
    let mut hs = Vec::new();
    for i in 0..100 {
        let s = s.clone();
        hs.push(tokio::spawn(async move {
            let mut attempts = 0;
            loop {
                attempts += 1;
                let rev = s.get_config(srv.id).await.unwrap().revision;
                match s
                    .save_config(
                        srv.id,
                        rev,
                        vec![sec("profile", json!({"writer": i}), None)],
                        None,
                        Some(format!("w{i}")),
                    )
                    .await
                {
                    Ok(v) => return (v.version, attempts),
                    Err(StoreError::StaleRevision) => tokio::task::yield_now().await,
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }
        }));
    }
    let mut versions = HashSet::new();
    let mut total_attempts = 0;
    for h in hs {
        let (v, a) = h.await.unwrap();
        assert!(versions.insert(v), "version {v} handed out twice");
        total_attempts += a;
    }
    let end = s.get_config(srv.id).await.unwrap().revision;
    assert_eq!(end, start + 100);
    assert_eq!(versions.len(), 100);
    let listed = s.list_config_versions(srv.id, 1000).await.unwrap();
    assert_eq!(listed.len(), 100);
    let comments: HashSet<_> = listed.iter().filter_map(|v| v.comment.clone()).collect();
    assert_eq!(comments.len(), 100, "every writer's save is recorded");
    eprintln!(
        "[{}] 100 retrying writers: {total_attempts} attempts, {:?}",
        s.backend(),
        began.elapsed()
    );
}

pub(crate) fn kinds(c: &ServerConfig) -> Vec<&str> {
    c.sections
        .iter()
        .map(|x| x.section.section.as_str())
        .collect()
}

pub(crate) async fn config_delete_and_replace_sections(s: S) {
    let srv = server(&s).await;
    s.save_config(
        srv.id,
        0,
        vec![
            sec("server", json!({"hostname": "a"}), Some(&[7])),
            sec("basic", json!({"x": 1}), None),
        ],
        None,
        None,
    )
    .await
    .unwrap();
    s.save_config(
        srv.id,
        1,
        vec![
            sec("launch", json!({"mods": []}), None),
            sec("rcon", json!({}), Some(&[9])),
        ],
        None,
        None,
    )
    .await
    .unwrap();
    let c2 = s.get_config(srv.id).await.unwrap();
    // Ordered by name.
    assert_eq!(kinds(&c2), ["basic", "launch", "rcon", "server"]);

    // Delete = replace with the others: stale revision refused and nothing changes.
    let without_launch: Vec<ConfigSection> = c2
        .sections
        .iter()
        .map(|x| x.section.clone())
        .filter(|x| x.section != "launch")
        .collect();
    let r = s
        .replace_config(srv.id, 1, without_launch.clone(), None, None)
        .await;
    assert!(matches!(r, Err(StoreError::StaleRevision)), "{r:?}");
    assert!(matches!(
        s.replace_config(Uuid::new_v4(), 0, vec![], None, None)
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.get_config(srv.id).await.unwrap(), c2);
    let v3 = s
        .replace_config(srv.id, 2, without_launch, None, Some("drop launch".into()))
        .await
        .unwrap();
    assert_eq!(v3.version, 3);
    let got: Vec<_> = v3.sections.iter().map(|x| x.section.as_str()).collect();
    assert_eq!(got, ["basic", "rcon", "server"]);
    let c3 = s.get_config(srv.id).await.unwrap();
    assert_eq!(c3.revision, 3);
    assert_eq!(kinds(&c3), ["basic", "rcon", "server"]);
    assert_eq!(
        s.get_config_version(srv.id, 3)
            .await
            .unwrap()
            .unwrap()
            .sections
            .len(),
        3
    );

    // Replace with version 1's sections (rollback): rcon, added later, goes; server keeps
    // its secrets; one new version.
    let v1 = s.get_config_version(srv.id, 1).await.unwrap().unwrap();
    let r = s
        .replace_config(srv.id, 2, v1.sections.clone(), None, None)
        .await;
    assert!(matches!(r, Err(StoreError::StaleRevision)), "{r:?}");
    let v4 = s
        .replace_config(
            srv.id,
            3,
            v1.sections.clone(),
            None,
            Some("rollback".into()),
        )
        .await
        .unwrap();
    assert_eq!(v4.version, 4);
    let c4 = s.get_config(srv.id).await.unwrap();
    assert_eq!(c4.revision, 4);
    assert_eq!(kinds(&c4), ["basic", "server"]);
    let server_sec = c4
        .sections
        .iter()
        .find(|x| x.section.section == "server")
        .unwrap();
    assert_eq!(server_sec.section.secrets.as_deref(), Some(&[7u8][..]));
    assert_eq!(server_sec.revision, 4);
    assert_eq!(
        s.get_config_version(srv.id, 4)
            .await
            .unwrap()
            .unwrap()
            .sections
            .len(),
        2
    );
    // Replacing with nothing empties the config (still a version).
    let v5 = s
        .replace_config(srv.id, 4, vec![], None, None)
        .await
        .unwrap();
    assert!(v5.sections.is_empty());
    assert!(s.get_config(srv.id).await.unwrap().sections.is_empty());
    assert_eq!(s.list_config_versions(srv.id, 100).await.unwrap().len(), 5);
}

/// Section names are the game's business: any name is stored (and its secrets carried
/// through versions), except an empty one or one the snapshot codec cannot carry.
pub(crate) async fn config_sections_are_free_text(s: S) {
    let srv = server(&s).await;
    let long = "n".repeat(255);
    let v = s
        .save_config(
            srv.id,
            0,
            vec![
                sec("PalWorldSettings.ini", json!({"a": 1}), Some(&[1, 2])),
                sec(&long, json!({}), Some(&[3])),
            ],
            None,
            None,
        )
        .await
        .unwrap();
    let back = s.get_config_version(srv.id, 1).await.unwrap().unwrap();
    assert_eq!(back, v);
    assert_eq!(
        back.sections
            .iter()
            .map(|x| (x.section.as_str(), x.secrets.clone()))
            .collect::<Vec<_>>(),
        [
            ("PalWorldSettings.ini", Some(vec![1, 2])),
            (long.as_str(), Some(vec![3])),
        ]
    );
    for bad in [String::new(), "n".repeat(256), "a\0b".to_owned()] {
        let r = s
            .save_config(srv.id, 1, vec![sec(&bad, json!({}), None)], None, None)
            .await;
        assert!(
            matches!(r, Err(StoreError::InvalidInput(_))),
            "{bad:?}: {r:?}"
        );
    }
    assert_eq!(s.get_config(srv.id).await.unwrap().revision, 1);
}
