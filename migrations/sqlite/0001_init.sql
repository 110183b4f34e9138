-- Languard schema, SQLite flavour. Keep in step with ../postgres/0001_init.sql.
-- UUIDs are 16-byte BLOBs (sqlx encoding), timestamps fixed-width RFC 3339 UTC TEXT
-- written by the application ("YYYY-MM-DDTHH:MM:SS.ffffffZ", so text order = time order),
-- JSON is TEXT, booleans INTEGER 0/1.

CREATE TABLE users (
    id                   BLOB PRIMARY KEY NOT NULL,
    username             TEXT NOT NULL,
    password_hash        TEXT NOT NULL,
    role                 TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    must_change_password BOOLEAN NOT NULL DEFAULT 0,
    disabled             BOOLEAN NOT NULL DEFAULT 0,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

CREATE TABLE refresh_tokens (
    id          BLOB PRIMARY KEY NOT NULL,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   BLOB NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    expires_at  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    used_at     TEXT,
    revoked_at  TEXT,
    ip          TEXT,
    user_agent  TEXT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

CREATE TABLE api_tokens (
    id           BLOB PRIMARY KEY NOT NULL,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    expires_at   TEXT,
    revoked_at   TEXT
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE hosts (
    id           BLOB PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL UNIQUE,
    agent_id     TEXT UNIQUE,
    os           TEXT NOT NULL,
    status       TEXT NOT NULL,
    last_seen_at TEXT,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT
);

CREATE TABLE servers (
    id              BLOB PRIMARY KEY NOT NULL,
    host_id         BLOB NOT NULL REFERENCES hosts (id) ON DELETE RESTRICT,
    name            TEXT NOT NULL,
    game            TEXT NOT NULL CHECK (game IN ('arma3', 'palworld')),
    game_port       INTEGER NOT NULL,
    rcon_port       INTEGER NOT NULL,
    executable_path TEXT NOT NULL,
    restart_policy  TEXT NOT NULL,
    desired_running BOOLEAN NOT NULL DEFAULT 0,
    revision        INTEGER NOT NULL DEFAULT 1,
    config_revision INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (host_id, name)
);

-- Current config, one row per (server, section). Secrets are removed from `content` and
-- kept encrypted (nonce + ciphertext, produced by the API layer) in `secrets`.
CREATE TABLE server_configs (
    server_id  BLOB NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    section    TEXT NOT NULL CHECK (section IN ('server', 'basic', 'profile', 'launch', 'rcon')),
    content    TEXT NOT NULL,
    secrets    BLOB,
    revision   INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (server_id, section)
);

-- One row per save: snapshot = {"section": content, ...} (no secrets);
-- secrets = the encrypted blobs of all sections in the store's binary snapshot format.
CREATE TABLE config_versions (
    id             BLOB PRIMARY KEY NOT NULL,
    server_id      BLOB NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    version        INTEGER NOT NULL,
    author_user_id BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at     TEXT NOT NULL,
    comment        TEXT,
    snapshot       TEXT NOT NULL,
    secrets        BLOB,
    UNIQUE (server_id, version)
);

CREATE TABLE mods (
    id          BLOB PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    workshop_id TEXT UNIQUE,
    path        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE server_mods (
    server_id   BLOB NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    mod_id      BLOB NOT NULL REFERENCES mods (id) ON DELETE RESTRICT,
    position    INTEGER NOT NULL,
    server_only BOOLEAN NOT NULL DEFAULT 0,
    PRIMARY KEY (server_id, mod_id)
);
CREATE INDEX server_mods_mod ON server_mods (mod_id);

CREATE TABLE players (
    id         BLOB PRIMARY KEY NOT NULL,
    guid       TEXT NOT NULL UNIQUE,
    steam_id   TEXT,
    last_name  TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL
);
CREATE INDEX players_last_seen ON players (last_seen);

CREATE TABLE player_sessions (
    id        BLOB PRIMARY KEY NOT NULL,
    server_id BLOB NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    player_id BLOB NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    joined_at TEXT NOT NULL,
    left_at   TEXT,
    ip        TEXT
);
CREATE INDEX player_sessions_server ON player_sessions (server_id, joined_at);
CREATE INDEX player_sessions_player ON player_sessions (player_id, joined_at);
CREATE INDEX player_sessions_joined ON player_sessions (joined_at);

CREATE TABLE bans (
    id         BLOB PRIMARY KEY NOT NULL,
    server_id  BLOB REFERENCES servers (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('guid', 'ip')),
    target     TEXT NOT NULL,
    reason     TEXT NOT NULL,
    expires_at TEXT,
    created_by BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    removed_at TEXT
);
CREATE INDEX bans_server ON bans (server_id, removed_at);
CREATE INDEX bans_target ON bans (kind, target);

-- Time series: integer ids (FTS5 needs an integer rowid).
CREATE TABLE logs (
    id        INTEGER PRIMARY KEY,
    server_id BLOB NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    ts        TEXT NOT NULL,
    level     INTEGER NOT NULL,
    text      TEXT NOT NULL
);
CREATE INDEX logs_server_ts ON logs (server_id, ts, id);
CREATE INDEX logs_ts ON logs (ts, id);

-- Case-insensitive substring search: FTS5 trigram index over logs.text
-- (external content; kept in sync by triggers).
CREATE VIRTUAL TABLE logs_fts USING fts5 (text, content = 'logs', content_rowid = 'id', tokenize = 'trigram');
CREATE TRIGGER logs_fts_insert AFTER INSERT ON logs BEGIN
    INSERT INTO logs_fts (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER logs_fts_delete AFTER DELETE ON logs BEGIN
    INSERT INTO logs_fts (logs_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;

CREATE TABLE metrics (
    id          INTEGER PRIMARY KEY,
    server_id   BLOB REFERENCES servers (id) ON DELETE CASCADE,
    host_id     BLOB REFERENCES hosts (id) ON DELETE CASCADE,
    ts          TEXT NOT NULL,
    cpu_percent REAL,
    rss_bytes   INTEGER,
    players     INTEGER,
    fps         REAL
);
CREATE INDEX metrics_server_ts ON metrics (server_id, ts);
CREATE INDEX metrics_host_ts ON metrics (host_id, ts);
CREATE INDEX metrics_ts ON metrics (ts);

CREATE TABLE audit_events (
    id            BLOB PRIMARY KEY NOT NULL,
    ts            TEXT NOT NULL,
    actor_user_id BLOB,
    actor_kind    TEXT NOT NULL CHECK (actor_kind IN ('user', 'api_token', 'system', 'agent')),
    action        TEXT NOT NULL,
    target_kind   TEXT,
    target_id     TEXT,
    ip            TEXT,
    details       TEXT NOT NULL
);
CREATE INDEX audit_ts ON audit_events (ts, id);
CREATE INDEX audit_actor ON audit_events (actor_user_id, ts);
CREATE INDEX audit_action ON audit_events (action, ts);
CREATE INDEX audit_target ON audit_events (target_kind, target_id, ts);

CREATE TABLE schedules (
    id          BLOB PRIMARY KEY NOT NULL,
    server_id   BLOB NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    cron        TEXT NOT NULL,
    action      TEXT NOT NULL,
    args        TEXT NOT NULL,
    enabled     BOOLEAN NOT NULL DEFAULT 1,
    last_run_at TEXT,
    next_run_at TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX schedules_server ON schedules (server_id);
CREATE INDEX schedules_due ON schedules (enabled, next_run_at);
