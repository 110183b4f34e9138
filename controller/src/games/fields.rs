//! Reading section JSON into a game's typed models with field paths in every error, for
//! any game's [`super::Game::validate`].

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::FieldError;

/// `v` as `T`; the error names the field as `section.path.to[2]`.
pub fn deser<T: DeserializeOwned>(section: &str, v: &Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let path = e.path().to_string();
        FieldError {
            field: if path == "." {
                section.to_owned()
            } else {
                format!("{section}.{path}")
            },
            message: e.inner().to_string(),
        }
    })
}

/// Keys of `input` the typed model does not have (models that ignore unknown fields
/// would drop them silently).
pub fn unknown_keys<T: Serialize>(section: &str, typed: &T, input: &Value) -> Vec<FieldError> {
    let known = serde_json::to_value(typed).ok();
    let (Some(Value::Object(known)), Value::Object(inp)) = (known, input) else {
        return Vec::new();
    };
    inp.keys()
        .filter(|k| !known.contains_key(*k))
        .map(|k| FieldError {
            field: format!("{section}.{k}"),
            message: "unknown field".into(),
        })
        .collect()
}

/// `typed` as canonical JSON (the form stored).
pub fn canonical<T: Serialize>(section: &str, typed: &T) -> Result<Value, Vec<FieldError>> {
    serde_json::to_value(typed).map_err(|e| {
        vec![FieldError {
            field: section.into(),
            message: e.to_string(),
        }]
    })
}

/// A stored (already validated) section as its model; `None` when absent.
pub fn stored<T: DeserializeOwned>(v: Option<&Value>) -> crate::error::Result<Option<T>> {
    v.map(|v| serde_json::from_value(v.clone()).map_err(crate::error::Error::internal))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Serialize, serde::Deserialize)]
    struct M {
        a: u8,
        #[serde(default)]
        b: Vec<u8>,
    }

    #[test]
    fn errors_carry_the_section_and_path() {
        let e = deser::<M>("s", &serde_json::json!({"a": 1, "b": [1, 300]})).unwrap_err();
        assert_eq!(e.field, "s.b[1]");
        let unk = unknown_keys("s", &M::default(), &serde_json::json!({"a": 1, "zz": 2}));
        assert_eq!(unk.len(), 1);
        assert_eq!(unk[0].field, "s.zz");
    }
}
