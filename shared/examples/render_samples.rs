//! Renders sample configs for the interop suite (tests/interop/test_armaclass.py).
//!
//! `cargo run -p languard-shared --example render_samples -- DIR` writes
//! `DIR/<sample>/<file>` and beside each `<file>.expected.json`: the entries the model
//! puts into the file (server.cfg: straight from the model's items; basic.cfg and the
//! profile: our parser's reading, which the round-trip property tests hold equal to
//! the model). armaclass, a parser that shares no code with ours, must read the same.

use std::path::Path;

use languard_shared::arma::config::syntax::{self, Body, Item, Value};
use languard_shared::arma::config::{Arma3Profile, BasicConfig, ServerConfig};
use serde_json::{Map, Value as Json, json};

/// Strings that have broken config generators before: quotes (doubled by Arma's
/// parser), backslashes (literal), comment and class syntax, non-ASCII text.
const HOSTILE: &[&str] = &[
    r#"Quote " inside"#,
    r#""""#,
    r"C:\path\with\backslashes\",
    "}; class Injected { x = 1; }; y = \"",
    "// not a comment /* nor this */",
    "#include \"evil.hpp\"",
    "Zoë Максим 李雷 🎮 ✓",
    "",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .ok_or("usage: render_samples OUTPUT_DIR")?;
    let out = Path::new(&out);

    let typical: ServerConfig = serde_json::from_value(json!({
        "hostname": "[EU] Languard Invade & Annex | ACE | TFAR",
        "password": "joinme",
        "password_admin": "s3cret-admin",
        "max_players": 64,
        "motd": ["Welcome!", "", "Discord: example.invalid/languard"],
        "motd_interval": 5.0,
        "admins": ["76561198017965694"],
        "headless_clients": ["127.0.0.1"],
        "vote_threshold": 0.33,
        "vote_mission_players": 3,
        "verify_signatures": 2,
        "battleye": true,
        "persistent": true,
        "time_stamp_format": "short",
        "disable_von": false,
        "von_codec_quality": 30,
        "kick_clients_on_slow_network": [0, 0, 0, 1],
        "skip_lobby": false,
        "on_user_disconnected": "",
        "advanced_options": { "log_object_not_found": false, "queue_size_log_g": 1000000 },
        "missions": [
            { "template": "co10_Escape.Altis", "difficulty": "Custom",
              "params": [ { "name": "Daytime", "value": 12 }, { "name": "Weather", "value": 0.5 } ] },
            { "class_name": "Invade", "template": "I&A_4.Tanoa", "difficulty": "Regular" }
        ]
    }))?;

    let hostile: ServerConfig = serde_json::from_value(json!({
        "hostname": HOSTILE.concat(),
        "password": HOSTILE[0],
        "motd": HOSTILE,
        "log_file": HOSTILE[2],
        "on_user_connected": "diag_log format [\"%1 joined\", _this select 0];",
        "missions": [
            { "class_name": "Hostile", "template": HOSTILE[3], "difficulty": HOSTILE[1],
              "params": [ { "name": "Label", "value": HOSTILE[4] } ] }
        ],
        "extra": [
            { "name": "myModSetting", "value": HOSTILE[5] },
            { "name": "myModList", "value": [HOSTILE[0], [HOSTILE[3], 1, 2.5]] }
        ]
    }))?;

    // A typical "hardcore" preset, as the server's custom difficulty.
    let profile: Arma3Profile = serde_json::from_value(json!({
        "custom_difficulty": {
            "options": {
                "reduced_damage": 0, "group_indicators": 0, "friendly_tags": 0,
                "enemy_tags": 0, "detected_mines": 0, "commands": 1, "waypoints": 1,
                "tactical_ping": 3, "weapon_info": 1, "stance_indicator": 1,
                "stamina_bar": 0, "weapon_crosshair": 0, "vision_aid": 0,
                "third_person_view": 2, "camera_shake": 1, "score_table": 0,
                "death_messages": 0, "von_id": 1, "map_content_friendly": 0,
                "map_content_enemy": 0, "map_content_mines": 0, "auto_report": 0,
                "multiple_saves": 0
            },
            "ai_level_preset": 3
        },
        "custom_ai_level": { "skill_ai": 0.75, "precision_ai": 0.35 }
    }))?;

    for (name, server) in [("typical", typical), ("hostile", hostile)] {
        let dir = out.join(name);
        std::fs::create_dir_all(&dir)?;
        write(
            &dir,
            "server.cfg",
            &server.render()?,
            items_json(&server.to_items()?),
        )?;
    }
    let dir = out.join("typical");
    let basic = BasicConfig::default().render()?;
    write(
        &dir,
        "basic.cfg",
        &basic,
        items_json(&syntax::parse(&basic)?),
    )?;
    let profile = profile.render()?;
    write(
        &dir,
        "server.Arma3Profile",
        &profile,
        items_json(&syntax::parse(&profile)?),
    )?;
    Ok(())
}

fn write(dir: &Path, file: &str, text: &str, expected: Json) -> std::io::Result<()> {
    std::fs::write(dir.join(file), text)?;
    let json = serde_json::to_string_pretty(&expected).map_err(std::io::Error::other)?;
    std::fs::write(dir.join(format!("{file}.expected.json")), json)
}

/// The shape armaclass produces: classes as objects, arrays as lists.
fn items_json(items: &[Item]) -> Json {
    let mut map = Map::new();
    for item in items {
        let value = match &item.body {
            Body::Value(v) => value_json(v),
            Body::Array { values, .. } => Json::Array(values.iter().map(value_json).collect()),
            Body::Class { items, .. } => items_json(items.as_deref().unwrap_or_default()),
        };
        map.insert(item.name.clone(), value);
    }
    Json::Object(map)
}

fn value_json(value: &Value) -> Json {
    match value {
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::Float(f) => json!(f),
        Value::Str(s) => json!(s),
        Value::Array(values) => Json::Array(values.iter().map(value_json).collect()),
    }
}
