//! A small generic reader and writer for the Arma config language (the syntax of
//! server.cfg, basic.cfg and `.Arma3Profile`).
//!
//! Reading accepts what real files contain: `name = value;`, `name[] = {…};`
//! (nested arrays, `+=`), `class Name {…};`, `class Name: Base {…};`,
//! `class Name;`, `//` and `/* */` comments, numbers (ints, floats, negative,
//! exponents, `0x` hex), quoted strings with `""` for a quote, `true`/`false`
//! and bare words (read as strings, as Arma does). Preprocessor directives
//! (`#include`, `#define`, …) are **rejected** with a syntax error: we cannot
//! follow an include from an uploaded file, and silently skipping one would
//! drop part of the admin's configuration. The armaclass `"a" \n "b"` string
//! concatenation is not supported either (the typed models reject line breaks).
//!
//! Writing produces the canonical form the typed models use; every name and
//! string is validated first, so a value can never end its entry early.

use super::error::{ConfigError, FieldProblem, Pos};
use super::escape;

/// A value on the right-hand side of an entry or inside an array.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// Boolean, written `true` / `false`.
    Bool(bool),
    /// Integer.
    Int(i64),
    /// Floating point number; always written with a `.` so readers keep it a float.
    Float(f64),
    /// String, written quoted with `""` for an embedded quote.
    Str(String),
    /// Array `{a, b, {c}}`.
    Array(Vec<Value>),
}

/// One entry of a config body. Equality ignores `pos`.
#[derive(Debug, Clone)]
pub struct Item {
    /// Name of the parameter or class.
    pub name: String,
    /// Where it starts in the parsed input (default for built items).
    pub pos: Pos,
    /// What it holds.
    pub body: Body,
}

/// The three kinds of entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// `name = value;` (the value may itself be an array when written `name = {…}`).
    Value(Value),
    /// `name[] = {…};` or `name[] += {…};`.
    Array {
        /// Elements.
        values: Vec<Value>,
        /// Written with `+=`.
        append: bool,
    },
    /// `class name: base {…};`, or `class name;` when `items` is `None`.
    Class {
        /// Inherited class.
        base: Option<String>,
        /// Body, `None` for a forward declaration.
        items: Option<Vec<Item>>,
    },
}

impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.body == other.body
    }
}

impl Item {
    /// `name = value;`
    pub fn value(name: &str, value: Value) -> Self {
        Self {
            name: name.to_owned(),
            pos: Pos::default(),
            body: Body::Value(value),
        }
    }
    /// `name[] = {…};`
    pub fn array(name: &str, values: Vec<Value>) -> Self {
        Self {
            name: name.to_owned(),
            pos: Pos::default(),
            body: Body::Array {
                values,
                append: false,
            },
        }
    }
    /// `class name {…};`
    pub fn class(name: &str, items: Vec<Item>) -> Self {
        Self {
            name: name.to_owned(),
            pos: Pos::default(),
            body: Body::Class {
                base: None,
                items: Some(items),
            },
        }
    }
}

// ---------------------------------------------------------------------------
// Reader

/// Parses a whole config text into its top-level items.
pub fn parse(text: &str) -> Result<Vec<Item>, ConfigError> {
    let mut p = Parser {
        chars: text.chars().collect(),
        i: 0,
        line: 1,
        col: 1,
        depth: 0,
    };
    let items = p.items(false)?;
    Ok(items)
}

/// Deepest nesting of class bodies and arrays (counted together) the reader
/// accepts. Real configs stay below 10 levels; the limit keeps a hostile
/// upload (`a[]={{{{…` or `class a{class a{…`) from overflowing the stack,
/// since the reader is recursive.
pub const MAX_NESTING: usize = 32;

struct Parser {
    chars: Vec<char>,
    i: usize,
    line: usize,
    col: usize,
    /// Class bodies and arrays currently open.
    depth: usize,
}

impl Parser {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.col,
        }
    }

    fn err<T>(&self, message: impl Into<String>) -> Result<T, ConfigError> {
        Err(ConfigError::Syntax {
            pos: self.pos(),
            message: message.into(),
        })
    }

    /// Enters one class body or array level; errors (at the opening brace)
    /// beyond [`MAX_NESTING`]. Pair with [`Parser::leave`].
    fn enter(&mut self) -> Result<(), ConfigError> {
        if self.depth >= MAX_NESTING {
            return self.err(format!(
                "nesting deeper than {MAX_NESTING} levels (classes and arrays together)"
            ));
        }
        self.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn peek2(&self) -> Option<char> {
        self.chars.get(self.i + 1).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    /// Skips whitespace and comments; rejects preprocessor directives.
    fn skip_ws(&mut self) -> Result<(), ConfigError> {
        loop {
            match (self.peek(), self.peek2()) {
                (Some(c), _) if c.is_whitespace() || c == '\u{feff}' => {
                    self.bump();
                }
                (Some('/'), Some('/')) => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                (Some('/'), Some('*')) => {
                    let start = self.pos();
                    self.bump();
                    self.bump();
                    loop {
                        match (self.peek(), self.peek2()) {
                            (Some('*'), Some('/')) => {
                                self.bump();
                                self.bump();
                                break;
                            }
                            (Some(_), _) => {
                                self.bump();
                            }
                            (None, _) => {
                                return Err(ConfigError::Syntax {
                                    pos: start,
                                    message: "unterminated /* comment".into(),
                                });
                            }
                        }
                    }
                }
                (Some('#'), _) => {
                    let word: String = self.chars[self.i..]
                        .iter()
                        .take_while(|c| !c.is_whitespace())
                        .collect();
                    return self.err(format!(
                        "preprocessor directive `{word}` is not supported; inline the included or defined content"
                    ));
                }
                _ => return Ok(()),
            }
        }
    }

    fn expect(&mut self, want: char) -> Result<(), ConfigError> {
        self.skip_ws()?;
        match self.peek() {
            Some(c) if c == want => {
                self.bump();
                Ok(())
            }
            Some(c) => self.err(format!("expected `{want}`, found `{c}`")),
            None => self.err(format!("expected `{want}`, found end of input")),
        }
    }

    fn ident(&mut self) -> Result<String, ConfigError> {
        self.skip_ws()?;
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                s.push(c);
                self.bump();
            } else {
                break;
            }
        }
        if s.is_empty() {
            return match self.peek() {
                Some(c) => self.err(format!("expected a name, found `{c}`")),
                None => self.err("expected a name, found end of input"),
            };
        }
        Ok(s)
    }

    /// Items until `}` (nested) or end of input (top level).
    fn items(&mut self, nested: bool) -> Result<Vec<Item>, ConfigError> {
        let mut out = Vec::new();
        loop {
            self.skip_ws()?;
            match self.peek() {
                None if nested => return self.err("missing `}` at end of input"),
                None => return Ok(out),
                Some('}') if nested => return Ok(out),
                Some(';') => {
                    // Stray semicolons are harmless; Arma tolerates them.
                    self.bump();
                }
                Some(_) => out.push(self.item()?),
            }
        }
    }

    fn item(&mut self) -> Result<Item, ConfigError> {
        self.skip_ws()?;
        let pos = self.pos();
        let word = self.ident()?;
        if word == "class" {
            let name = self.ident()?;
            self.skip_ws()?;
            let mut base = None;
            if self.peek() == Some(':') {
                self.bump();
                base = Some(self.ident()?);
                self.skip_ws()?;
            }
            let items = match self.peek() {
                Some(';') => None,
                Some('{') => {
                    self.enter()?;
                    self.bump();
                    let items = self.items(true)?;
                    self.expect('}')?;
                    self.leave();
                    Some(items)
                }
                _ => return self.err(format!("expected `{{` or `;` after `class {name}`")),
            };
            self.expect(';')?;
            return Ok(Item {
                name,
                pos,
                body: Body::Class { base, items },
            });
        }
        if word == "delete" || word == "import" {
            return self.err(format!("`{word}` statements are not supported here"));
        }
        self.skip_ws()?;
        let body = if self.peek() == Some('[') {
            self.bump();
            self.expect(']')?;
            self.skip_ws()?;
            let append = if self.peek() == Some('+') {
                self.bump();
                true
            } else {
                false
            };
            self.expect('=')?;
            self.skip_ws()?;
            if self.peek() != Some('{') {
                return self.err(format!("expected `{{` to start the array `{word}[]`"));
            }
            match self.value()? {
                Value::Array(values) => Body::Array { values, append },
                _ => return self.err("expected an array"),
            }
        } else {
            self.expect('=')?;
            Body::Value(self.value()?)
        };
        self.expect(';')?;
        Ok(Item {
            name: word,
            pos,
            body,
        })
    }

    fn value(&mut self) -> Result<Value, ConfigError> {
        self.skip_ws()?;
        match self.peek() {
            Some('"') => self.string().map(Value::Str),
            Some('{') => {
                self.enter()?;
                let values = self.array_body()?;
                self.leave();
                Ok(Value::Array(values))
            }
            Some(_) => self.scalar(),
            None => self.err("expected a value, found end of input"),
        }
    }

    /// The elements of an array, from its `{` through the closing `}`.
    fn array_body(&mut self) -> Result<Vec<Value>, ConfigError> {
        self.bump();
        let mut values = Vec::new();
        self.skip_ws()?;
        if self.peek() == Some('}') {
            self.bump();
            return Ok(values);
        }
        loop {
            values.push(self.value()?);
            self.skip_ws()?;
            match self.bump() {
                Some(',') => {
                    self.skip_ws()?;
                    // Tolerate a trailing comma.
                    if self.peek() == Some('}') {
                        self.bump();
                        return Ok(values);
                    }
                }
                Some('}') => return Ok(values),
                Some(c) => {
                    return self.err(format!("expected `,` or `}}` in array, found `{c}`"));
                }
                None => return self.err("unterminated array"),
            }
        }
    }

    fn string(&mut self) -> Result<String, ConfigError> {
        let start = self.pos();
        self.bump();
        let mut s = String::new();
        loop {
            match self.bump() {
                Some('"') => {
                    if self.peek() == Some('"') {
                        self.bump();
                        s.push('"');
                    } else {
                        return Ok(s);
                    }
                }
                Some(c) => s.push(c),
                None => {
                    return Err(ConfigError::Syntax {
                        pos: start,
                        message: "unterminated string".into(),
                    });
                }
            }
        }
    }

    /// A number, `true`/`false`, or a bare word up to `;`, `,`, `}` or a line end.
    fn scalar(&mut self) -> Result<Value, ConfigError> {
        let start = self.pos();
        let mut raw = String::new();
        while let Some(c) = self.peek() {
            if matches!(c, ';' | ',' | '}' | '\n' | '\r' | '{' | '"') {
                break;
            }
            if c == '/' && matches!(self.peek2(), Some('/') | Some('*')) {
                break;
            }
            raw.push(c);
            self.bump();
        }
        let word = raw.trim();
        if word.is_empty() {
            return Err(ConfigError::Syntax {
                pos: start,
                message: "expected a value".into(),
            });
        }
        Ok(scalar_value(word))
    }
}

/// Classifies an unquoted token: bool, int, float, else a bare-word string.
fn scalar_value(word: &str) -> Value {
    if word.eq_ignore_ascii_case("true") {
        return Value::Bool(true);
    }
    if word.eq_ignore_ascii_case("false") {
        return Value::Bool(false);
    }
    let (neg, digits) = match word.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, word),
    };
    if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
        && let Ok(v) = i64::from_str_radix(hex, 16)
    {
        return Value::Int(if neg { -v } else { v });
    }
    let numeric = !digits.is_empty()
        && digits.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if numeric {
        if digits.chars().all(|c| c.is_ascii_digit())
            && let Ok(v) = word.parse::<i64>()
        {
            return Value::Int(v);
        }
        if let Ok(v) = word.parse::<f64>()
            && v.is_finite()
        {
            return Value::Float(v);
        }
    }
    Value::Str(word.to_owned())
}

// ---------------------------------------------------------------------------
// Writer

/// Validates every name and value of `items` (paths are built from `prefix`
/// and the item names) and renders them, four spaces per nesting level.
pub fn render(items: &[Item], prefix: &str) -> Result<String, ConfigError> {
    let mut out = String::new();
    write_items(&mut out, items, prefix, 0)?;
    Ok(out)
}

fn write_items(
    out: &mut String,
    items: &[Item],
    prefix: &str,
    depth: usize,
) -> Result<(), ConfigError> {
    for item in items {
        let path = format!("{prefix}.{}", item.name);
        escape::check_identifier(&path, &item.name)?;
        let indent = "    ".repeat(depth);
        out.push_str(&indent);
        match &item.body {
            Body::Value(v) => {
                out.push_str(&item.name);
                out.push_str(" = ");
                write_value(out, v, &path)?;
                out.push_str(";\n");
            }
            Body::Array { values, append } => {
                out.push_str(&item.name);
                out.push_str(if *append { "[] += " } else { "[] = " });
                write_array(out, values, &path)?;
                out.push_str(";\n");
            }
            Body::Class { base, items } => {
                out.push_str("class ");
                out.push_str(&item.name);
                if let Some(base) = base {
                    escape::check_identifier(&format!("{path}:base"), base)?;
                    out.push_str(": ");
                    out.push_str(base);
                }
                match items {
                    None => out.push_str(";\n"),
                    Some(inner) if inner.is_empty() => out.push_str(" {};\n"),
                    Some(inner) => {
                        out.push('\n');
                        out.push_str(&indent);
                        out.push_str("{\n");
                        write_items(out, inner, &path, depth + 1)?;
                        out.push_str(&indent);
                        out.push_str("};\n");
                    }
                }
            }
        }
    }
    Ok(())
}

fn write_array(out: &mut String, values: &[Value], path: &str) -> Result<(), ConfigError> {
    out.push('{');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_value(out, v, &format!("{path}[{i}]"))?;
    }
    out.push('}');
    Ok(())
}

/// Writes one value; strings are checked and quoted, floats must be finite.
pub fn write_value(out: &mut String, v: &Value, path: &str) -> Result<(), ConfigError> {
    match v {
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(
            &format_float(*f).ok_or_else(|| ConfigError::field(path, FieldProblem::NotFinite))?,
        ),
        Value::Str(s) => {
            escape::check_text(path, s)?;
            out.push_str(&escape::quote(s));
        }
        Value::Array(values) => write_array(out, values, path)?,
    }
    Ok(())
}

/// Formats a float so that every reader keeps it a float: Rust's shortest
/// round-trip form (never exponent notation), with `.0` added to whole numbers
/// (armaclass reads a token without `.` as an int). `None` for NaN/infinity.
pub fn format_float(f: f64) -> Option<String> {
    if !f.is_finite() {
        return None;
    }
    let s = format!("{f}");
    Some(if s.contains('.') { s } else { format!("{s}.0") })
}

/// Checks every string and float inside `v` (element paths like `name[2]`).
pub fn check_value(v: &Value, path: &str) -> Result<(), ConfigError> {
    let mut sink = String::new();
    write_value(&mut sink, v, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_forms() {
        let text = r#"
            // comment
            /* block
               comment */
            hostname = "My ""best"" server\x";   // trailing
            maxPlayers = 64;
            neg = -5; f = 0.33; e = 1.5e3; e2 = -2E-2; hex = 0x10;
            motd[] = {"a", "", "b"};
            nested[] = {{0, -1}, {1, 180}};
            kicks[] += {1};
            yes = true; no = FALSE;
            bare = MyMission.Altis;
            class Base;
            class Missions
            {
                class M1: Base { template = "x.Altis"; class Params {}; };
            };
        "#;
        let items = parse(text).unwrap();
        let get = |n: &str| items.iter().find(|i| i.name == n).unwrap().body.clone();
        assert_eq!(
            get("hostname"),
            Body::Value(Value::Str(r#"My "best" server\x"#.into()))
        );
        assert_eq!(get("maxPlayers"), Body::Value(Value::Int(64)));
        assert_eq!(get("neg"), Body::Value(Value::Int(-5)));
        assert_eq!(get("f"), Body::Value(Value::Float(0.33)));
        assert_eq!(get("e"), Body::Value(Value::Float(1500.0)));
        assert_eq!(get("e2"), Body::Value(Value::Float(-0.02)));
        assert_eq!(get("hex"), Body::Value(Value::Int(16)));
        assert_eq!(
            get("motd"),
            Body::Array {
                values: vec![
                    Value::Str("a".into()),
                    Value::Str("".into()),
                    Value::Str("b".into())
                ],
                append: false
            }
        );
        assert_eq!(
            get("nested"),
            Body::Array {
                values: vec![
                    Value::Array(vec![Value::Int(0), Value::Int(-1)]),
                    Value::Array(vec![Value::Int(1), Value::Int(180)])
                ],
                append: false
            }
        );
        assert!(matches!(get("kicks"), Body::Array { append: true, .. }));
        assert_eq!(get("yes"), Body::Value(Value::Bool(true)));
        assert_eq!(get("no"), Body::Value(Value::Bool(false)));
        assert_eq!(
            get("bare"),
            Body::Value(Value::Str("MyMission.Altis".into()))
        );
        assert_eq!(
            get("Base"),
            Body::Class {
                base: None,
                items: None
            }
        );
        let Body::Class {
            items: Some(missions),
            ..
        } = get("Missions")
        else {
            panic!()
        };
        assert_eq!(missions[0].name, "M1");
        assert!(matches!(&missions[0].body, Body::Class { base: Some(b), .. } if b == "Base"));
        assert_eq!(missions[0].pos.line, 16);
    }

    #[test]
    fn errors_carry_position() {
        let err = parse("a = 1;\nb = \"oops;\n").unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Syntax {
                    pos: Pos { line: 2, column: 5 },
                    ..
                }
            ),
            "{err:?}"
        );
        let err = parse("a = 1;\n  #include \"x.hpp\"\n").unwrap_err();
        match err {
            ConfigError::Syntax { pos, message } => {
                assert_eq!(pos, Pos { line: 2, column: 3 });
                assert!(message.contains("#include"));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse("class A { x = 1;").is_err());
        assert!(parse("x = 1").is_err());
        assert!(parse("x[] = 1;").is_err());
    }

    #[test]
    fn writer_round_trips_and_formats_floats() {
        let items = vec![
            Item::value("a", Value::Float(1.0)),
            Item::value("b", Value::Float(0.001)),
            Item::array(
                "c",
                vec![
                    Value::Str("q\"}; class X {".into()),
                    Value::Array(vec![Value::Int(-1)]),
                ],
            ),
            Item::class("K", vec![Item::value("s", Value::Str("x".into()))]),
            Item::class("Empty", vec![]),
        ];
        let text = render(&items, "t").unwrap();
        assert!(text.contains("a = 1.0;"));
        assert!(text.contains("b = 0.001;"));
        let back = parse(&text).unwrap();
        assert_eq!(back.len(), items.len());
        for (a, b) in back.iter().zip(&items) {
            assert_eq!(a.name, b.name);
            assert_eq!(a.body, b.body);
        }
        assert_eq!(format_float(1e300).map(|s| s.ends_with(".0")), Some(true));
        assert_eq!(format_float(f64::NAN), None);
    }

    fn nesting_error(text: &str) -> (Pos, String) {
        match parse(text) {
            Err(ConfigError::Syntax { pos, message }) => (pos, message),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn deeply_nested_arrays_are_rejected_without_overflow() {
        let text = format!("a[]={}", "{".repeat(100_000));
        let (pos, message) = nesting_error(&text);
        assert!(
            message.contains("nesting deeper than 32 levels"),
            "{message}"
        );
        // The 33rd `{` (column 5 is the first one).
        assert_eq!(
            pos,
            Pos {
                line: 1,
                column: 5 + 32
            }
        );
        // Same through a plain value and with whitespace between the braces.
        let (_, message) = nesting_error(&format!("a = {};", "{ \n".repeat(100_000)));
        assert!(
            message.contains("nesting deeper than 32 levels"),
            "{message}"
        );
    }

    #[test]
    fn deeply_nested_classes_are_rejected_without_overflow() {
        let text = "class a{".repeat(100_000);
        let (pos, message) = nesting_error(&text);
        assert!(
            message.contains("nesting deeper than 32 levels"),
            "{message}"
        );
        assert_eq!(
            pos,
            Pos {
                line: 1,
                column: 32 * 8 + 8
            }
        );
        // Classes and arrays count together.
        let text = format!("{}x[]={};", "class a{".repeat(20), "{".repeat(20));
        let (_, message) = nesting_error(&text);
        assert!(
            message.contains("nesting deeper than 32 levels"),
            "{message}"
        );
    }

    #[test]
    fn nesting_up_to_the_limit_is_accepted() {
        // 31 classes + one array level = 32.
        let text = format!("{}x[]={{1}};{}", "class a{".repeat(31), "};".repeat(31));
        assert!(parse(&text).is_ok());
        let text = format!("x[]={}1{};", "{".repeat(32), "}".repeat(32));
        assert!(parse(&text).is_ok());
        let text = format!("x[]={}1{};", "{".repeat(33), "}".repeat(33));
        assert!(parse(&text).is_err());
        // Sibling levels do not accumulate.
        let sibling = format!("{}x=1;{}", "class a{".repeat(30), "};".repeat(30));
        assert!(parse(&format!("{sibling}{sibling}{sibling}")).is_ok());
    }

    #[test]
    fn writer_rejects_bad_names_and_values() {
        let err = render(&[Item::value("bad name", Value::Int(1))], "s").unwrap_err();
        assert_eq!(err.field_path(), Some("s.bad name"));
        let err = render(
            &[Item::array(
                "m",
                vec![Value::Str("ok".into()), Value::Str("a\r\n".into())],
            )],
            "s",
        )
        .unwrap_err();
        assert_eq!(err.field_path(), Some("s.m[1]"));
        assert!(render(&[Item::value("f", Value::Float(f64::INFINITY))], "s").is_err());
    }
}
