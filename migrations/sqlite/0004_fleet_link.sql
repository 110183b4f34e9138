-- Fleet link (DESIGN.md, "Controller <-> agent link"). Keep in step with
-- ../postgres/0004_fleet_link.sql. Same conventions as 0001: UUIDs BLOB, timestamps
-- fixed-width RFC 3339 UTC TEXT, JSON TEXT.

-- The enrolled agent's build and the highest agent sequence number committed for the
-- host (the link's acknowledgement; written by ingest, reset by enrollment).
ALTER TABLE hosts ADD COLUMN agent_version TEXT;
ALTER TABLE hosts ADD COLUMN acked_seq INTEGER NOT NULL DEFAULT 0;

-- One-time join tokens: only the SHA-256 of the secret is kept.
CREATE TABLE join_tokens (
    id          BLOB PRIMARY KEY NOT NULL,
    host_id     BLOB NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    created_by  BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX join_tokens_host ON join_tokens (host_id, created_at);
CREATE INDEX join_tokens_expires ON join_tokens (expires_at);

-- A server's actual state as last reported by its agent (one row per server).
CREATE TABLE server_status (
    server_id   BLOB PRIMARY KEY NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    state       TEXT NOT NULL,
    pid         INTEGER,
    since       TEXT NOT NULL,
    detail      TEXT,
    exit_code   INTEGER,
    exit_signal INTEGER,
    restarts    INTEGER NOT NULL DEFAULT 0,
    updated_at  TEXT NOT NULL
);

-- A server's history (status changes, joins/leaves, chat, kicks, outbox gaps). Integer ids:
-- newest-first paging by id. server_id NULL = host-wide event.
CREATE TABLE server_events (
    id        INTEGER PRIMARY KEY,
    server_id BLOB REFERENCES servers (id) ON DELETE CASCADE,
    host_id   BLOB NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    ts        TEXT NOT NULL,
    kind      TEXT NOT NULL,
    data      TEXT NOT NULL
);
CREATE INDEX server_events_server ON server_events (server_id, id);
CREATE INDEX server_events_host ON server_events (host_id, id);
CREATE INDEX server_events_ts ON server_events (ts);

-- Metric roll-ups, one row per (subject, resolution, bucket start). `scope` is the
-- subject as a NOT NULL key (the server's UUID text, or 'host:<uuid>' for a host's
-- host-wide samples) so the primary key works with ON CONFLICT on both databases;
-- server_id / host_id are kept for the cascades. Averages are sum / n with a count per
-- field, so a sample without e.g. cpu does not pull the cpu average down. Sums are
-- floating point so that no value an agent sends can overflow them.
CREATE TABLE metric_rollups (
    scope       TEXT NOT NULL,
    bucket_secs INTEGER NOT NULL,
    ts          TEXT NOT NULL,
    server_id   BLOB REFERENCES servers (id) ON DELETE CASCADE,
    host_id     BLOB REFERENCES hosts (id) ON DELETE CASCADE,
    samples     INTEGER NOT NULL,
    cpu_n       INTEGER NOT NULL,
    cpu_sum     REAL NOT NULL,
    cpu_max     REAL,
    rss_n       INTEGER NOT NULL,
    rss_sum     REAL NOT NULL,
    rss_max     INTEGER,
    players_n   INTEGER NOT NULL,
    players_sum REAL NOT NULL,
    players_max INTEGER,
    PRIMARY KEY (scope, bucket_secs, ts)
);
CREATE INDEX metric_rollups_bucket_ts ON metric_rollups (bucket_secs, ts);
CREATE INDEX metric_rollups_server ON metric_rollups (server_id);
CREATE INDEX metric_rollups_host ON metric_rollups (host_id);

-- Log ingest: the FTS5 trigram index is most of the cost of storing a log line, and much
-- of that is merging the small segment each commit writes. Merging 16 segments of a level
-- at a time instead of 4 writes each posting fewer times (measured: ~30k -> ~45k lines/s
-- in batches of 1000) and did not slow substring search measurably.
INSERT INTO logs_fts (logs_fts, rank) VALUES ('automerge', 16);
