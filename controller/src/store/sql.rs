//! SQL assembly shared by the areas: parameterised dynamic SQL, multi-row inserts.

use time::OffsetDateTime;
use uuid::Uuid;

/// Binds a `Vec<Arg>` onto a query in order.
macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                $crate::store::sql::Arg::Uuid(v) => q.bind(v),
                $crate::store::sql::Arg::I64(v) => q.bind(v),
                $crate::store::sql::Arg::I16(v) => q.bind(v),
                $crate::store::sql::Arg::Ts(v) => q.bind($crate::store::codec::DbTs(v)),
                $crate::store::sql::Arg::Text(v) => q.bind(v),
            };
        }
        q
    }};
}

pub(crate) fn clamp_limit(limit: i64, max: i64) -> i64 {
    limit.clamp(1, max)
}

// ------------------------------------------------------------------ dynamic SQL

/// A bind value for dynamically assembled (but fully parameterised) SQL.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Uuid(Uuid),
    I64(i64),
    I16(i16),
    Ts(OffsetDateTime),
    Text(String),
}

/// SQL assembled from fixed fragments with `$n` placeholders (valid on both backends).
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub sql: String,
    pub args: Vec<Arg>,
}

impl Sql {
    pub fn new(s: &str) -> Self {
        Sql {
            sql: s.to_owned(),
            args: Vec::new(),
        }
    }
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.sql.push_str(s);
        self
    }
    /// Appends a placeholder for `a`.
    pub fn bind(&mut self, a: Arg) -> &mut Self {
        self.args.push(a);
        self.sql.push_str(&format!("${}", self.args.len()));
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// Multi-row INSERT text for `rows` rows of `cols` columns.
///
/// SQLite gets anonymous `?` placeholders: sqlx looks up every parameter's name when it
/// binds, and SQLite finds a name by scanning a list of all named parameters, so `$n`
/// would make binding a statement quadratic in its parameter count (it was most of the
/// time of a 512-row log insert). PostgreSQL needs `$n`.
pub(crate) fn multi_insert(backend: Backend, head: &str, cols: usize, rows: usize) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(head.len() + rows * cols * 6);
    s.push_str(head);
    s.push_str(" VALUES ");
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            s.push(',');
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push(',');
            }
            n += 1;
            match backend {
                Backend::Sqlite => s.push('?'),
                Backend::Postgres => {
                    let _ = write!(s, "${n}");
                }
            }
        }
        s.push(')');
    }
    s
}
