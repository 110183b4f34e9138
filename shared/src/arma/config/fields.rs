//! Shared machinery of the typed models: converting field types to and from
//! syntax items, per-field checks, and free-form `extra` entries.

use super::error::{ConfigError, FieldProblem};
use super::escape;
use super::syntax::{self, Body, Item, Value};

/// A model field type that maps to one config entry.
pub(crate) trait CfgField: Sized {
    fn to_body(&self) -> Body;
    fn from_body(body: &Body) -> Result<Self, FieldProblem>;
}

/// Extra checks on a field, on top of "strings hold no control characters".
#[derive(Debug, Clone, Copy)]
pub(crate) enum Check {
    /// Every number (or array element) lies in the inclusive range.
    Int(i64, i64),
    /// Every number (or array element) lies in the inclusive range.
    Float(f64, f64),
    /// Every string is a SteamID64 (17 ASCII digits).
    SteamId64,
    /// Every string is only ASCII digits (a Steam UID of any length).
    Digits,
    /// Every string is an IPv4 or IPv6 address.
    Ip,
    /// The array has exactly this many elements.
    Len(usize),
}

fn array_values(body: &Body) -> Option<&[Value]> {
    match body {
        Body::Array { values, .. } => Some(values),
        Body::Value(Value::Array(values)) => Some(values),
        _ => None,
    }
}

fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(i64::from(*b)),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
        _ => None,
    }
}

impl CfgField for String {
    fn to_body(&self) -> Body {
        Body::Value(Value::Str(self.clone()))
    }
    fn from_body(body: &Body) -> Result<Self, FieldProblem> {
        match body {
            Body::Value(Value::Str(s)) => Ok(s.clone()),
            _ => Err(FieldProblem::WrongType("a string")),
        }
    }
}

impl CfgField for i64 {
    fn to_body(&self) -> Body {
        Body::Value(Value::Int(*self))
    }
    fn from_body(body: &Body) -> Result<Self, FieldProblem> {
        match body {
            Body::Value(v) => int_of(v).ok_or(FieldProblem::WrongType("an integer")),
            _ => Err(FieldProblem::WrongType("an integer")),
        }
    }
}

impl CfgField for f64 {
    fn to_body(&self) -> Body {
        Body::Value(Value::Float(*self))
    }
    fn from_body(body: &Body) -> Result<Self, FieldProblem> {
        match body {
            Body::Value(Value::Float(f)) => Ok(*f),
            Body::Value(Value::Int(i)) => Ok(*i as f64),
            _ => Err(FieldProblem::WrongType("a number")),
        }
    }
}

/// `true`/`false` in the file; 0/1 accepted on import.
impl CfgField for bool {
    fn to_body(&self) -> Body {
        Body::Value(Value::Bool(*self))
    }
    fn from_body(body: &Body) -> Result<Self, FieldProblem> {
        match body {
            Body::Value(Value::Bool(b)) => Ok(*b),
            Body::Value(Value::Int(0)) => Ok(false),
            Body::Value(Value::Int(1)) => Ok(true),
            _ => Err(FieldProblem::WrongType("a boolean (true/false or 0/1)")),
        }
    }
}

/// A boolean the wiki documents as `0`/`1` (e.g. `BattlEye = 1;`); written as
/// an integer, `true`/`false` accepted on import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Flag01(pub bool);

impl CfgField for Flag01 {
    fn to_body(&self) -> Body {
        Body::Value(Value::Int(i64::from(self.0)))
    }
    fn from_body(body: &Body) -> Result<Self, FieldProblem> {
        bool::from_body(body)
            .map(Flag01)
            .map_err(|_| FieldProblem::WrongType("0 or 1"))
    }
}

impl CfgField for Vec<String> {
    fn to_body(&self) -> Body {
        Body::Array {
            values: self.iter().map(|s| Value::Str(s.clone())).collect(),
            append: false,
        }
    }
    fn from_body(body: &Body) -> Result<Self, FieldProblem> {
        let values = array_values(body).ok_or(FieldProblem::WrongType("an array of strings"))?;
        values
            .iter()
            .map(|v| match v {
                Value::Str(s) => Ok(s.clone()),
                _ => Err(FieldProblem::WrongType("an array of strings")),
            })
            .collect()
    }
}

impl CfgField for Vec<i64> {
    fn to_body(&self) -> Body {
        Body::Array {
            values: self.iter().map(|i| Value::Int(*i)).collect(),
            append: false,
        }
    }
    fn from_body(body: &Body) -> Result<Self, FieldProblem> {
        let values = array_values(body).ok_or(FieldProblem::WrongType("an array of integers"))?;
        values
            .iter()
            .map(|v| int_of(v).ok_or(FieldProblem::WrongType("an array of integers")))
            .collect()
    }
}

/// Raw (possibly nested) arrays such as `allowedVoteCmds[]` or `kickTimeout[]`.
impl CfgField for Vec<Value> {
    fn to_body(&self) -> Body {
        Body::Array {
            values: self.clone(),
            append: false,
        }
    }
    fn from_body(body: &Body) -> Result<Self, FieldProblem> {
        array_values(body)
            .map(<[Value]>::to_vec)
            .ok_or(FieldProblem::WrongType("an array"))
    }
}

fn range_problem(value: String, lo: String, hi: String) -> FieldProblem {
    FieldProblem::OutOfRange {
        value,
        range: format!("{lo}..={hi}"),
    }
}

fn check_scalar(v: &Value, path: &str, check: Check) -> Result<(), ConfigError> {
    let fail = |p: FieldProblem| Err(ConfigError::field(path, p));
    match (check, v) {
        (Check::Int(lo, hi), v) => match int_of(v) {
            Some(i) if (lo..=hi).contains(&i) => Ok(()),
            Some(i) => fail(range_problem(i.to_string(), lo.to_string(), hi.to_string())),
            None => fail(FieldProblem::WrongType("an integer")),
        },
        (Check::Float(lo, hi), Value::Float(f)) if (lo..=hi).contains(f) => Ok(()),
        (Check::Float(lo, hi), Value::Int(i)) if (lo..=hi).contains(&(*i as f64)) => Ok(()),
        (Check::Float(lo, hi), Value::Float(f)) => {
            fail(range_problem(f.to_string(), lo.to_string(), hi.to_string()))
        }
        (Check::Float(lo, hi), Value::Int(i)) => {
            fail(range_problem(i.to_string(), lo.to_string(), hi.to_string()))
        }
        (Check::Float(..), _) => fail(FieldProblem::WrongType("a number")),
        (Check::SteamId64, Value::Str(s)) => {
            if s.len() == 17 && s.bytes().all(|b| b.is_ascii_digit()) {
                Ok(())
            } else {
                fail(FieldProblem::Invalid(format!(
                    "`{s}` is not a SteamID64 (17 digits)"
                )))
            }
        }
        (Check::Digits, Value::Str(s)) => {
            if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) {
                Ok(())
            } else {
                fail(FieldProblem::Invalid(format!(
                    "`{s}` is not a numeric Steam UID"
                )))
            }
        }
        (Check::Ip, Value::Str(s)) => match s.parse::<std::net::IpAddr>() {
            Ok(_) => Ok(()),
            Err(_) => fail(FieldProblem::Invalid(format!("`{s}` is not an IP address"))),
        },
        (Check::SteamId64 | Check::Digits | Check::Ip, _) => {
            fail(FieldProblem::WrongType("a string"))
        }
        (Check::Len(_), _) => Ok(()),
    }
}

/// Validates one typed field: strings, floats, then `checks`.
pub(crate) fn validate_field<T: CfgField>(
    path: &str,
    value: &T,
    checks: &[Check],
) -> Result<(), ConfigError> {
    let body = value.to_body();
    match &body {
        Body::Value(v) => {
            syntax::check_value(v, path)?;
            for c in checks {
                check_scalar(v, path, *c)?;
            }
        }
        Body::Array { values, .. } => {
            for (i, v) in values.iter().enumerate() {
                let p = format!("{path}[{i}]");
                syntax::check_value(v, &p)?;
                for c in checks {
                    check_scalar(v, &p, *c)?;
                }
            }
            for c in checks {
                if let Check::Len(n) = c
                    && values.len() != *n
                {
                    return Err(ConfigError::field(
                        path,
                        FieldProblem::Invalid(format!(
                            "expected exactly {n} values, got {}",
                            values.len()
                        )),
                    ));
                }
            }
        }
        Body::Class { .. } => {}
    }
    Ok(())
}

/// Reads an imported item into a typed slot, checking it; errors carry the
/// item's position.
pub(crate) fn assign<T: CfgField>(
    slot: &mut Option<T>,
    item: &Item,
    path: &str,
    checks: &[Check],
) -> Result<(), ConfigError> {
    let v = T::from_body(&item.body).map_err(|p| ConfigError::field(path, p).at(item.pos))?;
    validate_field(path, &v, checks).map_err(|e| e.at(item.pos))?;
    *slot = Some(v);
    Ok(())
}

/// Generates, for a struct whose typed fields are all `Option<T: CfgField>`:
/// `TYPED_KEYS`, `emit_typed` (items for the set fields, in table order),
/// `validate_typed` and `assign_typed` (import one item if its key matches,
/// case-insensitively).
macro_rules! typed_fields {
    ($ty:ident { $( $field:ident : $fty:ty => $key:literal $([$($check:expr),* $(,)?])? ),* $(,)? }) => {
        impl $ty {
            /// The config keys this model manages, as Arma spells them.
            #[allow(dead_code)]
            pub const TYPED_KEYS: &'static [&'static str] = &[$($key),*];

            #[allow(dead_code)]
            fn emit_typed(&self, out: &mut Vec<$crate::arma::config::syntax::Item>) {
                $(
                    if let Some(v) = &self.$field {
                        out.push($crate::arma::config::syntax::Item {
                            name: $key.to_owned(),
                            pos: Default::default(),
                            body: $crate::arma::config::fields::CfgField::to_body(v),
                        });
                    }
                )*
            }

            #[allow(dead_code)]
            fn validate_typed(&self, prefix: &str) -> Result<(), $crate::arma::config::error::ConfigError> {
                #[allow(unused_imports)]
                use $crate::arma::config::fields::Check;
                $(
                    if let Some(v) = &self.$field {
                        $crate::arma::config::fields::validate_field::<$fty>(
                            &format!("{prefix}.{}", stringify!($field)), v, &[$($($check),*)?])?;
                    }
                )*
                Ok(())
            }

            #[allow(dead_code)]
            fn assign_typed(
                &mut self,
                item: &$crate::arma::config::syntax::Item,
                prefix: &str,
            ) -> Option<Result<(), $crate::arma::config::error::ConfigError>> {
                #[allow(unused_imports)]
                use $crate::arma::config::fields::Check;
                $(
                    if item.name.eq_ignore_ascii_case($key) {
                        return Some($crate::arma::config::fields::assign::<$fty>(
                            &mut self.$field, item, &format!("{prefix}.{}", stringify!($field)), &[$($($check),*)?]));
                    }
                )*
                None
            }
        }
    };
}
pub(crate) use typed_fields;

/// A free-form top-level parameter for settings the typed model does not
/// cover (admins ask for this: arma-server-web-admin #137, FASTER #91).
///
/// The name must be an identifier that no typed field manages and the value
/// is written through the same escaping as everything else, so an extra entry
/// can add exactly one parameter and never a class. An array value is written
/// as `name[] = {…};`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RawEntry {
    /// Parameter name, `[A-Za-z_][A-Za-z0-9_]*`.
    pub name: String,
    /// Its value.
    pub value: Value,
}

impl RawEntry {
    pub(crate) fn to_item(&self) -> Item {
        match &self.value {
            Value::Array(values) => Item::array(&self.name, values.clone()),
            v => Item::value(&self.name, v.clone()),
        }
    }

    /// The value of an imported top-level entry, if it is a parameter.
    pub(crate) fn from_item(item: &Item) -> Option<Self> {
        let value = match &item.body {
            Body::Value(v) => v.clone(),
            Body::Array { values, .. } => Value::Array(values.clone()),
            Body::Class { .. } => return None,
        };
        escape::is_identifier(&item.name).then(|| Self {
            name: item.name.clone(),
            value,
        })
    }
}

/// Names the config parser treats as keywords; never valid parameter names.
const KEYWORDS: &[&str] = &["class", "delete", "import"];

/// Validates `extra` entries: identifiers, no collision with `reserved`
/// (case-insensitive) or keywords, no duplicates, writable values.
pub(crate) fn validate_extras(
    extras: &[RawEntry],
    prefix: &str,
    reserved: &[&str],
) -> Result<(), ConfigError> {
    let mut seen: Vec<String> = Vec::new();
    for (i, e) in extras.iter().enumerate() {
        let name_path = format!("{prefix}.extra[{i}].name");
        escape::check_identifier(&name_path, &e.name)?;
        if let Some(r) = reserved
            .iter()
            .chain(KEYWORDS)
            .find(|r| r.eq_ignore_ascii_case(&e.name))
        {
            return Err(ConfigError::field(
                name_path,
                FieldProblem::Reserved((*r).to_owned()),
            ));
        }
        let lower = e.name.to_ascii_lowercase();
        if seen.contains(&lower) {
            return Err(ConfigError::field(
                name_path,
                FieldProblem::Duplicate(e.name.clone()),
            ));
        }
        seen.push(lower);
        syntax::check_value(&e.value, &format!("{prefix}.extra[{i}].value"))?;
    }
    Ok(())
}

/// Adds or replaces (case-insensitively) an imported extra entry; returns
/// whether it replaced one.
pub(crate) fn upsert_extra(extras: &mut Vec<RawEntry>, entry: RawEntry) -> bool {
    if let Some(existing) = extras
        .iter_mut()
        .find(|e| e.name.eq_ignore_ascii_case(&entry.name))
    {
        *existing = entry;
        true
    } else {
        extras.push(entry);
        false
    }
}
