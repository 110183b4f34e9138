//! Golden test: the committed openapi.yaml must match the code.
//! `UPDATE_OPENAPI=1 cargo test -p languard-controller --test openapi` rewrites it.

use languard_controller::config::Config;
use languard_controller::secrets::MasterKey;

#[tokio::test]
async fn openapi_yaml_is_current() {
    let dir = tempfile::tempdir().unwrap();
    let store = languard_controller::store::connect("sqlite::memory:")
        .await
        .unwrap();
    let app = languard_controller::with_store(
        store,
        Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        },
        &MasterKey::from_bytes([0u8; 32]),
    )
    .unwrap();
    let spec = languard_controller::api::spec_yaml(app);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.yaml");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &spec).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == spec,
        "openapi.yaml is stale; run: UPDATE_OPENAPI=1 cargo test -p languard-controller --test openapi"
    );
}
