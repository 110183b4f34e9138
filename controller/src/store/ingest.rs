//! Storing a batch of agent telemetry in one transaction with the new acknowledgement mark
//! (DESIGN.md, "Controller <-> agent link"), so an ack always means "committed".

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use serde_json::Value;

use super::StoreResult;
use super::codec::truncate;
use super::sql::{Backend, multi_insert};
use super::telemetry::{NewLogLine, NewMetricSample, NewServerEvent, ServerStatusRow};

/// A change to player sessions, applied in order inside [`Ingest::ingest`].
#[derive(Debug, Clone, PartialEq)]
pub enum SessionChange {
    /// Upserts the player by the server's game and `account` (name, last seen) and opens a
    /// session, unless the player already has an open session on the server: then only the
    /// player row changes (a game may report a join twice, e.g. once more when the account
    /// is verified).
    Join {
        server_id: Uuid,
        /// The game's account id (Arma 3: the BattlEye GUID).
        account: String,
        name: String,
        ip: Option<String>,
        at: OffsetDateTime,
    },
    /// Closes the player's open session on the server (by account; by last name when the
    /// account is unknown). Nothing open: nothing happens.
    Leave {
        server_id: Uuid,
        account: Option<String>,
        name: String,
        at: OffsetDateTime,
    },
    /// Closes every open session of the server (it stopped or crashed).
    CloseAll { server_id: Uuid, at: OffsetDateTime },
}

/// Everything one batch of agent events turned into. Stored in one transaction that also
/// raises the host's `acked_seq` to `upto`.
#[derive(Debug, Clone, Default)]
pub struct IngestBatch {
    pub host_id: Uuid,
    /// Highest agent sequence number covered by the batch.
    pub upto: i64,
    pub logs: Vec<NewLogLine>,
    pub metrics: Vec<NewMetricSample>,
    /// Upserted by server id (the last one per server wins). `updated_at` is ignored: the
    /// store sets it to the time of storing.
    pub statuses: Vec<ServerStatusRow>,
    pub events: Vec<NewServerEvent>,
    pub sessions: Vec<SessionChange>,
}

/// The one writer of agent telemetry.
#[async_trait]
pub trait Ingest: Send + Sync {
    /// Stores a batch of agent telemetry in ONE transaction: log lines, metric samples
    /// (and their roll-ups for every [`ROLLUP_BUCKETS`] resolution), status upserts, server
    /// events, session changes in order — and raises the host's `acked_seq` to
    /// `batch.upto` (never lowers it). Returns the host's `acked_seq` after the commit.
    /// Text is stored as given except NUL, which becomes U+FFFD (agent data must never make
    /// a batch unstorable, or the agent would replay it forever).
    ///
    /// Any failure (missing host: `NotFound`; a row naming a server that does not exist:
    /// `Conflict("foreign key: …")`) stores nothing and leaves `acked_seq` unchanged.
    /// Whether the servers belong to the host is the caller's check (the link knows the
    /// agent's identity); the caller must also drop rows of servers that no longer exist
    /// (deleted meanwhile), or the batch would fail on every replay. Status rows get
    /// `updated_at` = now. Batches of one host are serialised (the host row is updated
    /// first), so a replayed batch cannot interleave.
    async fn ingest(&self, batch: IngestBatch) -> StoreResult<i64>;
}

// ------------------------------------------------------------------ batched inserts

/// Most rows one multi-row INSERT carries (5 to 15 columns: far below the bind limits of
/// both databases, SQLite 32766 and PostgreSQL 65535).
pub(crate) const MAX_ROWS: usize = 512;
const ROW_SIZES: usize = MAX_ROWS.trailing_zeros() as usize + 1;

/// Row counts of the statements that insert `n` rows: full [`MAX_ROWS`] chunks, then the
/// remainder split into powers of two. So a table has at most ten distinct INSERT texts,
/// which all stay in sqlx's per-connection statement cache (it caches by SQL text): no
/// batch size ever makes the database parse a new statement.
pub(crate) fn chunk_plan(n: usize) -> impl Iterator<Item = usize> {
    let rem = n % MAX_ROWS;
    std::iter::repeat_n(MAX_ROWS, n / MAX_ROWS).chain(
        (0..ROW_SIZES)
            .rev()
            .map(|bit| 1usize << bit)
            .filter(move |size| rem & size != 0),
    )
}

/// `items` cut into the slices [`chunk_plan`] gives, one multi-row statement each.
pub(crate) fn planned_chunks<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    chunk_plan(items.len()).map(move |rows| {
        let (chunk, tail) = rest.split_at(rows);
        rest = tail;
        chunk
    })
}

/// A multi-row `INSERT` of one table whose SQL text is built once per row count.
pub(crate) struct MultiInsert {
    head: &'static str,
    cols: usize,
    /// Appended after the VALUES list (e.g. an `ON CONFLICT` clause).
    tail: &'static str,
    /// Per backend (SQLite, PostgreSQL), per power-of-two row count.
    texts: [[std::sync::OnceLock<String>; ROW_SIZES]; 2],
}

impl MultiInsert {
    pub(crate) const fn new(head: &'static str, cols: usize, tail: &'static str) -> Self {
        Self {
            head,
            cols,
            tail,
            texts: [const { [const { std::sync::OnceLock::new() }; ROW_SIZES] }; 2],
        }
    }

    /// The statement for `rows` rows (a count from [`chunk_plan`]; any other count is
    /// built on the spot and not cached).
    pub(crate) fn sql(
        &'static self,
        backend: Backend,
        rows: usize,
    ) -> std::borrow::Cow<'static, str> {
        let build = || {
            let mut s = multi_insert(backend, self.head, self.cols, rows);
            s.push_str(self.tail);
            s
        };
        let texts = &self.texts[backend as usize];
        match texts.get(rows.trailing_zeros() as usize) {
            Some(slot) if rows.is_power_of_two() => {
                std::borrow::Cow::Borrowed(slot.get_or_init(build).as_str())
            }
            _ => std::borrow::Cow::Owned(build()),
        }
    }
}

pub(crate) static LOGS_INSERT: MultiInsert =
    MultiInsert::new("INSERT INTO logs (server_id, seq, ts, level, text)", 5, "");
pub(crate) static METRICS_INSERT: MultiInsert = MultiInsert::new(
    "INSERT INTO metrics (server_id, host_id, ts, cpu_percent, rss_bytes, players, fps)",
    7,
    "",
);
pub(crate) static EVENTS_INSERT: MultiInsert = MultiInsert::new(
    "INSERT INTO server_events (server_id, host_id, seq, ts, kind, data)",
    6,
    "",
);
pub(crate) static STATUS_UPSERT: MultiInsert = MultiInsert::new(
    "INSERT INTO server_status (server_id, state, pid, since, detail, exit_code, exit_signal, restarts, updated_at)",
    9,
    " ON CONFLICT (server_id) DO UPDATE SET state = excluded.state, pid = excluded.pid, \
     since = excluded.since, detail = excluded.detail, exit_code = excluded.exit_code, \
     exit_signal = excluded.exit_signal, restarts = excluded.restarts, updated_at = excluded.updated_at",
);
/// Adds a batch's per-bucket deltas to the stored buckets. A max takes the other side
/// when one side is NULL (SQLite's two-argument `max()` would return NULL; PostgreSQL's
/// `GREATEST` would not, so neither is used).
pub(crate) static ROLLUP_UPSERT: MultiInsert = MultiInsert::new(
    "INSERT INTO metric_rollups (scope, bucket_secs, ts, server_id, host_id, samples, \
     cpu_n, cpu_sum, cpu_max, rss_n, rss_sum, rss_max, players_n, players_sum, players_max)",
    15,
    " ON CONFLICT (scope, bucket_secs, ts) DO UPDATE SET \
     samples = metric_rollups.samples + excluded.samples, \
     cpu_n = metric_rollups.cpu_n + excluded.cpu_n, \
     cpu_sum = metric_rollups.cpu_sum + excluded.cpu_sum, \
     cpu_max = CASE WHEN COALESCE(excluded.cpu_max > metric_rollups.cpu_max, metric_rollups.cpu_max IS NULL) \
       THEN excluded.cpu_max ELSE metric_rollups.cpu_max END, \
     rss_n = metric_rollups.rss_n + excluded.rss_n, \
     rss_sum = metric_rollups.rss_sum + excluded.rss_sum, \
     rss_max = CASE WHEN COALESCE(excluded.rss_max > metric_rollups.rss_max, metric_rollups.rss_max IS NULL) \
       THEN excluded.rss_max ELSE metric_rollups.rss_max END, \
     players_n = metric_rollups.players_n + excluded.players_n, \
     players_sum = metric_rollups.players_sum + excluded.players_sum, \
     players_max = CASE WHEN COALESCE(excluded.players_max > metric_rollups.players_max, metric_rollups.players_max IS NULL) \
       THEN excluded.players_max ELSE metric_rollups.players_max END",
);

// ------------------------------------------------------------------ agent telemetry

/// Agent text: NUL becomes U+FFFD (stored, never refused; see `Ingest::ingest`).
pub(crate) fn scrub(s: &mut String) {
    if s.contains('\0') {
        *s = s.replace('\0', "\u{FFFD}");
    }
}

fn scrub_opt(s: &mut Option<String>) {
    if let Some(s) = s {
        scrub(s);
    }
}

/// [`scrub`] for every string and key of a JSON value.
pub(crate) fn scrub_json(v: &mut Value) {
    match v {
        Value::String(s) => scrub(s),
        Value::Array(a) => a.iter_mut().for_each(scrub_json),
        Value::Object(o) => {
            if o.keys().any(|k| k.contains('\0')) {
                *o = std::mem::take(o)
                    .into_iter()
                    .map(|(mut k, mut v)| {
                        scrub(&mut k);
                        scrub_json(&mut v);
                        (k, v)
                    })
                    .collect();
            } else {
                o.values_mut().for_each(scrub_json);
            }
        }
        _ => {}
    }
}

/// NaN and infinities are no measurement (SQLite would store NULL, PostgreSQL the value).
pub(crate) fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// Makes a batch storable on both backends as documented on `Ingest::ingest`: NUL in any
/// text becomes U+FFFD, non-finite floats become missing, times are truncated to the
/// microseconds both databases keep.
pub(crate) fn sanitize_batch(b: &mut super::IngestBatch) {
    for l in &mut b.logs {
        scrub(&mut l.text);
        l.ts = truncate(l.ts);
    }
    for m in &mut b.metrics {
        m.cpu_percent = finite(m.cpu_percent);
        m.fps = finite(m.fps);
        m.ts = m.ts.map(truncate);
    }
    for s in &mut b.statuses {
        scrub_opt(&mut s.detail);
        s.since = truncate(s.since);
    }
    for e in &mut b.events {
        scrub_json(&mut e.data);
        e.ts = truncate(e.ts);
    }
    for c in &mut b.sessions {
        match c {
            super::SessionChange::Join {
                account,
                name,
                ip,
                at,
                ..
            } => {
                scrub(account);
                scrub(name);
                scrub_opt(ip);
                *at = truncate(*at);
            }
            super::SessionChange::Leave {
                account, name, at, ..
            } => {
                scrub_opt(account);
                scrub(name);
                *at = truncate(*at);
            }
            super::SessionChange::CloseAll { at, .. } => *at = truncate(*at),
        }
    }
}

/// The last status of each server in `statuses`, in order of those last reports (one
/// multi-row upsert must not name a row twice: PostgreSQL refuses that).
pub(crate) fn last_status_per_server(
    statuses: Vec<super::ServerStatusRow>,
) -> Vec<super::ServerStatusRow> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<_> = statuses
        .into_iter()
        .rev()
        .filter(|s| seen.insert(s.server_id))
        .collect();
    out.reverse();
    out
}

/// Implements [`Ingest`] for a backend (`impl_ingest!(SqliteStore)`): one body for both
/// databases, expanded in the backend module (which brings the names into scope).
macro_rules! impl_ingest {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::ingest::Ingest for $ty {
            async fn ingest(&self, mut batch: IngestBatch) -> StoreResult<i64> {
                sanitize_batch(&mut batch);
                let t = now();
                let mut tx = self.w().begin().await?;
                // The host row first: it proves the host exists and (PostgreSQL) locks it, so
                // two batches of one agent never interleave their upserts.
                let acked = sqlx::query_scalar::<_, i64>(
                    "UPDATE hosts SET acked_seq = CASE WHEN acked_seq < $2 THEN $2 ELSE acked_seq END \
                     WHERE id = $1 RETURNING acked_seq",
                )
                .bind(batch.host_id)
                .bind(batch.upto)
                .fetch_optional(&mut *tx)
                .await
                ?
                .ok_or(StoreError::NotFound)?;
                Self::insert_logs(&mut tx, &batch.logs).await?;
                Self::insert_metrics(&mut tx, &batch.metrics, t).await?;
                Self::upsert_statuses(&mut tx, &last_status_per_server(batch.statuses), t).await?;
                Self::insert_events(&mut tx, &batch.events).await?;
                for change in &batch.sessions {
                    Self::apply_session_change(&mut tx, change).await?;
                }
                tx.commit().await?;
                Ok(acked)
            }
        }

        impl $ty {
            /// Inserts log lines with multi-row statements ([`chunk_plan`]); the caller
            /// checked or scrubbed the text.
            async fn insert_logs(conn: &mut <Db as sqlx::Database>::Connection, lines: &[NewLogLine]) -> StoreResult<u64> {
                let mut n = 0;
                for chunk in planned_chunks(lines) {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(LOGS_INSERT.sql(Self::BACKEND, chunk.len())));
                    for l in chunk {
                        q = q.bind(l.server_id).bind(l.seq).bind(ts(l.ts)).bind(l.level.as_i16()).bind(l.text.as_str());
                    }
                    n += q.execute(&mut *conn).await?.rows_affected();
                }
                Ok(n)
            }

            /// Inserts metric samples (a missing time is `t`) and adds them to their
            /// roll-up buckets.
            async fn insert_metrics(
                conn: &mut <Db as sqlx::Database>::Connection,
                samples: &[NewMetricSample],
                t: OffsetDateTime,
            ) -> StoreResult<u64> {
                let mut n = 0;
                for chunk in planned_chunks(samples) {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(METRICS_INSERT.sql(Self::BACKEND, chunk.len())));
                    for m in chunk {
                        q = q
                            .bind(m.server_id)
                            .bind(m.host_id)
                            .bind(ts(m.ts.unwrap_or(t)))
                            .bind(m.cpu_percent)
                            .bind(m.rss_bytes)
                            .bind(m.players)
                            .bind(m.fps);
                    }
                    n += q.execute(&mut *conn).await?.rows_affected();
                }
                let deltas = rollup_deltas(samples, t);
                for chunk in planned_chunks(deltas.as_slice()) {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(ROLLUP_UPSERT.sql(Self::BACKEND, chunk.len())));
                    for d in chunk {
                        let m = &d.sums;
                        q = q
                            .bind(d.scope.as_str())
                            .bind(d.bucket_secs)
                            .bind(ts(d.ts))
                            .bind(d.server_id)
                            .bind(d.host_id)
                            .bind(m.samples)
                            .bind(m.cpu_n)
                            .bind(m.cpu_sum)
                            .bind(m.cpu_max)
                            .bind(m.rss_n)
                            .bind(m.rss_sum)
                            .bind(m.rss_max)
                            .bind(m.players_n)
                            .bind(m.players_sum)
                            .bind(m.players_max);
                    }
                    q.execute(&mut *conn).await?;
                }
                Ok(n)
            }

            /// Upserts statuses (at most one per server) with `updated_at = t`.
            async fn upsert_statuses(
                conn: &mut <Db as sqlx::Database>::Connection,
                statuses: &[ServerStatusRow],
                t: OffsetDateTime,
            ) -> StoreResult<()> {
                for chunk in planned_chunks(statuses) {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(STATUS_UPSERT.sql(Self::BACKEND, chunk.len())));
                    for s in chunk {
                        q = q
                            .bind(s.server_id)
                            .bind(s.state.as_str())
                            .bind(s.pid)
                            .bind(ts(s.since))
                            .bind(s.detail.as_deref())
                            .bind(s.exit_code)
                            .bind(s.exit_signal)
                            .bind(s.restarts)
                            .bind(ts(t));
                    }
                    q.execute(&mut *conn).await?;
                }
                Ok(())
            }

            async fn insert_events(conn: &mut <Db as sqlx::Database>::Connection, events: &[NewServerEvent]) -> StoreResult<()> {
                for chunk in planned_chunks(events) {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(EVENTS_INSERT.sql(Self::BACKEND, chunk.len())));
                    for e in chunk {
                        q = q
                            .bind(e.server_id)
                            .bind(e.host_id)
                            .bind(e.seq)
                            .bind(ts(e.ts))
                            .bind(e.kind.as_str())
                            .bind(Json(&e.data));
                    }
                    q.execute(&mut *conn).await?;
                }
                Ok(())
            }

            /// One [`SessionChange`], as documented there.
            async fn apply_session_change(conn: &mut <Db as sqlx::Database>::Connection, change: &SessionChange) -> StoreResult<()> {
                match change {
                    SessionChange::Join { server_id, account, name, ip, at } => {
                        let player = sqlx::query_scalar::<_, Uuid>(UPSERT_PLAYER_SQL)
                            .bind(new_id())
                            .bind(server_id)
                            .bind(account.as_str())
                            .bind(name.as_str())
                            .bind(ts(*at))
                            .fetch_optional(&mut *conn)
                            .await?
                            .ok_or_else(|| StoreError::Conflict("foreign key: player_sessions.server_id".into()))?;
                        // The partial unique index `player_sessions_open` makes a join of a
                        // player who is already on the server a no-op.
                        sqlx::query(
                            "INSERT INTO player_sessions (id, server_id, player_id, joined_at, ip) VALUES ($1, $2, $3, $4, $5) \
                             ON CONFLICT (server_id, player_id) WHERE left_at IS NULL DO NOTHING",
                        )
                        .bind(new_id())
                        .bind(server_id)
                        .bind(player)
                        .bind(ts(*at))
                        .bind(ip.as_deref())
                        .execute(&mut *conn)
                        .await?;
                    }
                    SessionChange::Leave { server_id, account: Some(account), at, .. } => {
                        sqlx::query(
                            "UPDATE player_sessions SET left_at = $3 WHERE server_id = $1 AND left_at IS NULL \
                             AND player_id IN (SELECT p.id FROM players p JOIN servers s ON s.game = p.game \
                             WHERE s.id = $1 AND p.account_id = $2)",
                        )
                        .bind(server_id)
                        .bind(account.as_str())
                        .bind(ts(*at))
                        .execute(&mut *conn)
                        .await?;
                    }
                    SessionChange::Leave { server_id, account: None, name, at } => {
                        sqlx::query(
                            "UPDATE player_sessions SET left_at = $3 WHERE server_id = $1 AND left_at IS NULL \
                             AND player_id IN (SELECT id FROM players WHERE last_name = $2)",
                        )
                        .bind(server_id)
                        .bind(name.as_str())
                        .bind(ts(*at))
                        .execute(&mut *conn)
                        .await?;
                    }
                    SessionChange::CloseAll { server_id, at } => {
                        sqlx::query("UPDATE player_sessions SET left_at = $2 WHERE server_id = $1 AND left_at IS NULL")
                            .bind(server_id)
                            .bind(ts(*at))
                            .execute(&mut *conn)
                            .await?;
                    }
                }
                Ok(())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_plan_uses_full_chunks_then_powers_of_two() {
        let items: Vec<usize> = (0..1000).collect();
        let chunks: Vec<&[usize]> = planned_chunks(&items).collect();
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 1000);
        assert_eq!(chunks.concat(), items);
        assert_eq!(chunk_plan(0).count(), 0);
        assert_eq!(
            chunk_plan(1000).collect::<Vec<_>>(),
            [512, 256, 128, 64, 32, 8]
        );
        assert_eq!(chunk_plan(1024).collect::<Vec<_>>(), [512, 512]);
        for n in [1, 7, 511, 512, 513, 5000] {
            assert_eq!(chunk_plan(n).sum::<usize>(), n);
            assert!(chunk_plan(n).all(|r| r.is_power_of_two() && r <= MAX_ROWS));
        }
    }

    #[test]
    fn multi_insert_texts_are_cached_per_row_count() {
        static T: MultiInsert =
            MultiInsert::new("INSERT INTO t (a, b)", 2, " ON CONFLICT DO NOTHING");
        let two = T.sql(Backend::Postgres, 2);
        assert_eq!(
            two,
            "INSERT INTO t (a, b) VALUES ($1,$2),($3,$4) ON CONFLICT DO NOTHING"
        );
        assert!(matches!(two, std::borrow::Cow::Borrowed(_)));
        assert_eq!(
            T.sql(Backend::Sqlite, 2),
            "INSERT INTO t (a, b) VALUES (?,?),(?,?) ON CONFLICT DO NOTHING"
        );
        assert!(matches!(
            T.sql(Backend::Postgres, 3),
            std::borrow::Cow::Owned(_)
        ));
    }

    #[test]
    fn scrub_replaces_nul_everywhere_in_json() {
        let mut v = serde_json::json!({"a\u{0}": ["x\u{0}y", {"k": "\u{0}"}]});
        scrub_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a\u{FFFD}": ["x\u{FFFD}y", {"k": "\u{FFFD}"}]})
        );
    }
}
