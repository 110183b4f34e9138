//! Role matrix: every operation of the committed openapi.yaml, called anonymously and as
//! viewer, operator and admin, against the access declared in `api::ACCESS`.

mod common;

use common::Harness;
use languard_controller::api::{ACCESS, Access};
use languard_controller::store::Role;
use serde_json::json;

fn allowed(access: Access, who: Option<Role>) -> bool {
    match (access, who) {
        (Access::Public, _) => true,
        (_, None) => false,
        (Access::Session | Access::Viewer, Some(_)) => true,
        (Access::Operator, Some(r)) => r != Role::Viewer,
        (Access::Admin, Some(r)) => r == Role::Admin,
    }
}

/// Who calls: a role's session, a user who must still change the password, or an API token.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Anon,
    Session(Role),
    MustChange,
    ApiToken(Role),
}

fn allowed_for(access: Access, who: Who) -> bool {
    match who {
        Who::Anon => allowed(access, None),
        Who::Session(r) | Who::ApiToken(r) => allowed(access, Some(r)),
        // Only what needs no role (and public operations) before the password change.
        Who::MustChange => matches!(access, Access::Public | Access::Session),
    }
}

#[tokio::test]
async fn every_operation_with_every_role() {
    let h = Harness::new().await;
    let viewer = h.user("viewer1", Role::Viewer).await;
    let operator = h.user("operator1", Role::Operator).await;
    let admin = h.user("admin1", Role::Admin).await;
    // A user who must change the password (created through the service with the flag).
    let sys = languard_controller::service::Ctx {
        principal: None,
        ip: None,
    };
    h.app
        .create_user(&sys, "fresh1", common::PW, Role::Admin, true)
        .await
        .unwrap();
    let must_change = h.login("fresh1", common::PW).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // An operator-role API token.
    let (s, v) = h
        .send(
            "POST",
            "/api/v1/tokens",
            &operator,
            json!({"name": "matrix", "role": "operator"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let api_token = v["token"].as_str().unwrap().to_owned();
    let yaml =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml")).unwrap();
    let spec: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
    let paths = spec["paths"].as_object().unwrap();
    let mut seen = Vec::new();
    let fake = uuid::Uuid::new_v4().to_string();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let op_id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            let access = ACCESS
                .iter()
                .find(|(id, _)| *id == op_id)
                .map(|(_, a)| *a)
                .unwrap_or_else(|| panic!("{op_id} is missing from api::ACCESS"));
            let declares_security = op.get("security").is_some();
            assert_eq!(
                declares_security,
                access != Access::Public,
                "{op_id}: spec security vs ACCESS"
            );
            seen.push(op_id.to_owned());
            // Real-looking parameters: random ids (404 when allowed), section names, numbers.
            let url = format!("/api/v1{}", path)
                .replace("{id}", &fake)
                .replace("{section}", "server")
                .replace("{version}", "1");
            let url = if op_id == "diffConfigVersions" {
                format!("{url}?from=1")
            } else {
                url
            };
            let body = if method == "get" || method == "delete" {
                None
            } else {
                Some(json!({}))
            };
            for (who, token) in [
                (Who::Anon, None),
                (Who::Session(Role::Viewer), Some(&viewer)),
                (Who::Session(Role::Operator), Some(&operator)),
                (Who::Session(Role::Admin), Some(&admin)),
                (Who::MustChange, Some(&must_change)),
                (Who::ApiToken(Role::Operator), Some(&api_token)),
            ] {
                if op_id == "logout" {
                    continue; // checked below without ending the sessions used here
                }
                let (status, v, _) = h
                    .call(
                        &method.to_uppercase(),
                        &url,
                        token.map(String::as_str),
                        body.clone(),
                    )
                    .await;
                // Whatever the role, a server error is a bug (a 500 must not pass as "allowed").
                assert!(status < 500, "{op_id} as {who:?}: got {status} {v}");
                if allowed_for(access, who) {
                    assert!(
                        status != 401 && status != 403,
                        "{op_id} as {who:?}: got {status} {v}"
                    );
                } else if who == Who::Anon {
                    assert_eq!(status, 401, "{op_id} anonymous: {v}");
                } else {
                    assert_eq!(status, 403, "{op_id} as {who:?}: {v}");
                }
            }
        }
    }
    for (id, _) in ACCESS {
        assert!(
            seen.iter().any(|s| s == id),
            "{id} is in ACCESS but not in openapi.yaml"
        );
    }
    // logout: anonymous 401, every role allowed.
    let (s, _, _) = h
        .call("POST", "/api/v1/auth/logout", None, Some(json!({})))
        .await;
    assert_eq!(s, 401);
    for t in [&viewer, &operator, &admin] {
        let (s, v, _) = h
            .call("POST", "/api/v1/auth/logout", Some(t), Some(json!({})))
            .await;
        assert_eq!(s, 204, "{v}");
    }
}
