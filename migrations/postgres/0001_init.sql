-- Languard schema, PostgreSQL flavour. Keep in step with ../sqlite/0001_init.sql.
-- UUIDs, TIMESTAMPTZ and JSONB are native; all integers BIGINT (the app uses i64).

-- Trigram index for case-insensitive substring search in logs (trusted extension, PG 13+).
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE users (
    id                   UUID PRIMARY KEY,
    username             TEXT NOT NULL,
    password_hash        TEXT NOT NULL,
    role                 TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    must_change_password BOOLEAN NOT NULL DEFAULT FALSE,
    disabled             BOOLEAN NOT NULL DEFAULT FALSE,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

CREATE TABLE refresh_tokens (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   UUID NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ,
    ip          TEXT,
    user_agent  TEXT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

CREATE TABLE api_tokens (
    id           UUID PRIMARY KEY,
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE hosts (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    agent_id     TEXT UNIQUE,
    os           TEXT NOT NULL,
    status       TEXT NOT NULL,
    last_seen_at TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ
);

CREATE TABLE servers (
    id              UUID PRIMARY KEY,
    host_id         UUID NOT NULL REFERENCES hosts (id) ON DELETE RESTRICT,
    name            TEXT NOT NULL,
    game            TEXT NOT NULL CHECK (game IN ('arma3', 'palworld')),
    game_port       BIGINT NOT NULL,
    rcon_port       BIGINT NOT NULL,
    executable_path TEXT NOT NULL,
    restart_policy  JSONB NOT NULL,
    desired_running BOOLEAN NOT NULL DEFAULT FALSE,
    revision        BIGINT NOT NULL DEFAULT 1,
    config_revision BIGINT NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (host_id, name)
);

-- Current config, one row per (server, section). Secrets are removed from `content` and
-- kept encrypted (nonce + ciphertext, produced by the API layer) in `secrets`.
CREATE TABLE server_configs (
    server_id  UUID NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    section    TEXT NOT NULL CHECK (section IN ('server', 'basic', 'profile', 'launch', 'rcon')),
    content    JSONB NOT NULL,
    secrets    BYTEA,
    revision   BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (server_id, section)
);

-- One row per save: snapshot = {"section": content, ...} (no secrets);
-- secrets = the encrypted blobs of all sections in the store's binary snapshot format.
CREATE TABLE config_versions (
    id             UUID PRIMARY KEY,
    server_id      UUID NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    version        BIGINT NOT NULL,
    author_user_id UUID REFERENCES users (id) ON DELETE SET NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    comment        TEXT,
    snapshot       JSONB NOT NULL,
    secrets        BYTEA,
    UNIQUE (server_id, version)
);

CREATE TABLE mods (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    workshop_id TEXT UNIQUE,
    path        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE server_mods (
    server_id   UUID NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    mod_id      UUID NOT NULL REFERENCES mods (id) ON DELETE RESTRICT,
    position    BIGINT NOT NULL,
    server_only BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (server_id, mod_id)
);
CREATE INDEX server_mods_mod ON server_mods (mod_id);

CREATE TABLE players (
    id         UUID PRIMARY KEY,
    guid       TEXT NOT NULL UNIQUE,
    steam_id   TEXT,
    last_name  TEXT NOT NULL,
    first_seen TIMESTAMPTZ NOT NULL,
    last_seen  TIMESTAMPTZ NOT NULL
);
CREATE INDEX players_last_seen ON players (last_seen);

CREATE TABLE player_sessions (
    id        UUID PRIMARY KEY,
    server_id UUID NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    player_id UUID NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    joined_at TIMESTAMPTZ NOT NULL,
    left_at   TIMESTAMPTZ,
    ip        TEXT
);
CREATE INDEX player_sessions_server ON player_sessions (server_id, joined_at);
CREATE INDEX player_sessions_player ON player_sessions (player_id, joined_at);
CREATE INDEX player_sessions_joined ON player_sessions (joined_at);

CREATE TABLE bans (
    id         UUID PRIMARY KEY,
    server_id  UUID REFERENCES servers (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('guid', 'ip')),
    target     TEXT NOT NULL,
    reason     TEXT NOT NULL,
    expires_at TIMESTAMPTZ,
    created_by UUID REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL,
    removed_at TIMESTAMPTZ
);
CREATE INDEX bans_server ON bans (server_id, removed_at);
CREATE INDEX bans_target ON bans (kind, target);

-- Time series: integer ids (same as SQLite, where FTS5 needs an integer rowid).
CREATE TABLE logs (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    server_id UUID NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    seq       BIGINT NOT NULL,
    ts        TIMESTAMPTZ NOT NULL,
    level     SMALLINT NOT NULL,
    text      TEXT NOT NULL
);
CREATE INDEX logs_server_ts ON logs (server_id, ts, id);
CREATE INDEX logs_ts ON logs (ts, id);

-- Case-insensitive substring search (ILIKE '%term%'), index-backed for terms of 3+ chars.
CREATE INDEX logs_text_trgm ON logs USING gin (text gin_trgm_ops);

CREATE TABLE metrics (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    server_id   UUID REFERENCES servers (id) ON DELETE CASCADE,
    host_id     UUID REFERENCES hosts (id) ON DELETE CASCADE,
    ts          TIMESTAMPTZ NOT NULL,
    cpu_percent DOUBLE PRECISION,
    rss_bytes   BIGINT,
    players     BIGINT,
    fps         DOUBLE PRECISION
);
CREATE INDEX metrics_server_ts ON metrics (server_id, ts);
CREATE INDEX metrics_host_ts ON metrics (host_id, ts);
CREATE INDEX metrics_ts ON metrics (ts);

CREATE TABLE audit_events (
    id            UUID PRIMARY KEY,
    ts            TIMESTAMPTZ NOT NULL,
    actor_user_id UUID,
    actor_kind    TEXT NOT NULL CHECK (actor_kind IN ('user', 'api_token', 'system', 'agent')),
    action        TEXT NOT NULL,
    target_kind   TEXT,
    target_id     TEXT,
    ip            TEXT,
    details       JSONB NOT NULL
);
CREATE INDEX audit_ts ON audit_events (ts, id);
CREATE INDEX audit_actor ON audit_events (actor_user_id, ts);
CREATE INDEX audit_action ON audit_events (action, ts);
CREATE INDEX audit_target ON audit_events (target_kind, target_id, ts);

CREATE TABLE schedules (
    id          UUID PRIMARY KEY,
    server_id   UUID NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    cron        TEXT NOT NULL,
    action      TEXT NOT NULL,
    args        JSONB NOT NULL,
    enabled     BOOLEAN NOT NULL DEFAULT TRUE,
    last_run_at TIMESTAMPTZ,
    next_run_at TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX schedules_server ON schedules (server_id);
CREATE INDEX schedules_due ON schedules (enabled, next_run_at);
