//! Writing strings and names the way Arma's config parser reads them.
//!
//! The rule (checked against the parser and generator of PyPI `armaclass`,
//! which our interop tests use, and the Bohemia wiki examples): a string is
//! enclosed in double quotes and a double quote inside it is written doubled
//! (`""`). Backslash is **not** an escape character, so `mpmissions\foo` is
//! written as is. There is no escape for control characters, so values holding
//! any (U+0000–U+001F, U+007F, including CR, LF and TAB) are rejected rather
//! than silently altered: a newline would end the entry and let a value inject
//! parameters.

use super::error::{ConfigError, FieldProblem};

/// The first control character of `s`, as (character index, code point).
pub fn find_control_char(s: &str) -> Option<(usize, u32)> {
    s.chars()
        .enumerate()
        .find(|(_, c)| is_forbidden(*c))
        .map(|(i, c)| (i, c as u32))
}

fn is_forbidden(c: char) -> bool {
    let c = c as u32;
    c < 0x20 || c == 0x7f
}

/// Checks that `value` can be written as an Arma config string; `field` names
/// it in the error.
pub fn check_text(field: &str, value: &str) -> Result<(), ConfigError> {
    match find_control_char(value) {
        Some((index, code)) => Err(ConfigError::field(
            field,
            FieldProblem::ControlChar { code, index },
        )),
        None => Ok(()),
    }
}

/// Whether `s` matches `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {
            chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        _ => false,
    }
}

/// Checks a class or parameter name; `field` names it in the error.
pub fn check_identifier(field: &str, name: &str) -> Result<(), ConfigError> {
    if is_identifier(name) {
        Ok(())
    } else {
        Err(ConfigError::field(
            field,
            FieldProblem::BadIdentifier(name.to_owned()),
        ))
    }
}

/// Quotes a string for an Arma config file: `"` + content with `"` doubled +
/// `"`. The caller must have checked it with [`check_text`]; this function
/// never fails and never alters other characters.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled_backslashes_kept() {
        assert_eq!(quote(r#"say "hi""#), r#""say ""hi""""#);
        assert_eq!(quote(r"mpmissions\foo.Altis"), r#""mpmissions\foo.Altis""#);
        assert_eq!(quote(""), r#""""#);
    }

    #[test]
    fn control_chars_rejected_with_field() {
        let err = check_text("server.motd[2]", "a\nb").unwrap_err();
        assert_eq!(err.field_path(), Some("server.motd[2]"));
        assert!(check_text("x", "tab\there").is_err());
        assert!(check_text("x", "del\u{7f}").is_err());
        assert!(check_text("x", "ünïcödé \"quoted\" \\ }; class X {").is_ok());
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("Mission_1"));
        assert!(is_identifier("_x"));
        assert!(!is_identifier("1abc"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("a-b"));
        assert!(!is_identifier("a b"));
        assert!(!is_identifier("é"));
    }
}
