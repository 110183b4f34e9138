//! Certificate serials per host (migration 0008): which certificate the link accepts
//! through enrollment, renewal, first use, revocation and re-enrollment.

use super::*;

conformance!(
    host_cert_serials_follow_renewal_and_revocation,
    host_cert_serials_of_hosts_enrolled_before_0008,
);

async fn enroll(s: &S, h: &Host) -> (Uuid, String) {
    let tok = s
        .insert_join_token(new_join_token(h.id, now() + Duration::hours(1)))
        .await
        .unwrap();
    let agent = Uuid::new_v4();
    let host = s.enroll_agent(enrollment(&tok, agent)).await.unwrap();
    let serial = agent.simple().to_string();
    assert_eq!(host.cert_serial.as_deref(), Some(serial.as_str()));
    assert_eq!(host.prev_cert_serial, None);
    (agent, serial)
}

async fn serials(s: &S, id: Uuid) -> (Option<String>, Option<String>) {
    let h = s.get_host(id).await.unwrap().unwrap();
    (h.cert_serial, h.prev_cert_serial)
}

pub(crate) async fn host_cert_serials_follow_renewal_and_revocation(s: S) {
    let h = host(&s, "serials").await;
    let (_, first) = enroll(&s, &h).await;
    assert!(s.use_host_cert(h.id, &first).await.unwrap());
    assert!(!s.use_host_cert(h.id, "forged").await.unwrap());
    assert!(!s.use_host_cert(Uuid::now_v7(), &first).await.unwrap());

    // Renewal over a link using `first`: `second` is current, `first` still accepted.
    assert!(s.renew_host_cert(h.id, &first, "second").await.unwrap());
    assert_eq!(
        serials(&s, h.id).await,
        (Some("second".into()), Some(first.clone()))
    );
    assert!(
        s.use_host_cert(h.id, &first).await.unwrap(),
        "the old one works until the new one is used"
    );
    assert_eq!(
        serials(&s, h.id).await,
        (Some("second".into()), Some(first.clone())),
        "using the old one changes nothing"
    );
    // The agent lost the answer and renews again over the old certificate.
    assert!(s.renew_host_cert(h.id, &first, "third").await.unwrap());
    assert_eq!(
        serials(&s, h.id).await,
        (Some("third".into()), Some(first.clone()))
    );
    assert!(
        !s.use_host_cert(h.id, "second").await.unwrap(),
        "a renewal never used is gone"
    );
    // First use of the new one: the old one is refused from now on.
    assert!(s.use_host_cert(h.id, "third").await.unwrap());
    assert_eq!(serials(&s, h.id).await, (Some("third".into()), None));
    assert!(!s.use_host_cert(h.id, &first).await.unwrap());
    assert!(
        !s.renew_host_cert(h.id, &first, "fourth").await.unwrap(),
        "a superseded certificate cannot renew"
    );
    assert_eq!(serials(&s, h.id).await, (Some("third".into()), None));
    assert!(
        !s.renew_host_cert(Uuid::now_v7(), "third", "x")
            .await
            .unwrap()
    );

    // Revoked: no certificate is accepted, none can renew.
    assert!(s.renew_host_cert(h.id, "third", "fifth").await.unwrap());
    s.revoke_host(h.id, now()).await.unwrap();
    for serial in ["third", "fifth"] {
        assert!(!s.use_host_cert(h.id, serial).await.unwrap(), "{serial}");
        assert!(!s.renew_host_cert(h.id, serial, "x").await.unwrap());
    }
    // Enrolled again: only the new enrollment's certificate.
    let (_, again) = enroll(&s, &h).await;
    for serial in ["third", "fifth", first.as_str()] {
        assert!(!s.use_host_cert(h.id, serial).await.unwrap(), "{serial}");
    }
    assert!(s.use_host_cert(h.id, &again).await.unwrap());
    // NUL is refused like in every other text.
    assert!(matches!(
        s.use_host_cert(h.id, "a\0b").await,
        Err(StoreError::InvalidInput(_))
    ));
}

pub(crate) async fn host_cert_serials_of_hosts_enrolled_before_0008(s: S) {
    // A host whose agent enrolled before serials were kept: its first certificate seen
    // becomes current, and is then the only one.
    let h = s
        .create_host(NewHost {
            name: "legacy".into(),
            agent_id: Some(Uuid::new_v4().to_string()),
            os: HostOs::Linux,
            status: HostStatus::Offline,
        })
        .await
        .unwrap();
    assert_eq!(serials(&s, h.id).await, (None, None));
    assert!(
        !s.renew_host_cert(h.id, "seen", "new").await.unwrap(),
        "no renewal before a certificate is known"
    );
    assert!(s.use_host_cert(h.id, "seen").await.unwrap());
    assert_eq!(serials(&s, h.id).await, (Some("seen".into()), None));
    assert!(!s.use_host_cert(h.id, "other").await.unwrap());
    assert!(s.use_host_cert(h.id, "seen").await.unwrap());
}
