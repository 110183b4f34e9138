-- Game-neutral storage (issue 9). Keep in step with ../postgres/0005_game_neutral.sql.
-- * players are keyed by (game, account_id): the game's own account id (Arma 3: the
--   BattlEye GUID, so existing rows become game 'arma3', account_id = guid); steam_id goes.
-- * player_sessions: at most one open session per (server, player).
-- * server_configs.section is free text: the controller's game registry validates names.
-- * bans.kind is 'account' or 'address' (was 'guid' / 'ip').
-- * server events of kind 'guid_verified' are now 'player_identified'. Their `data` (and
--   that of older player events) keeps the protocol version 1 payload it was stored with
--   (BattlEye `number`/`guid`/`ip` rather than `key`/`account`/`address`).
--
-- Runs inside the migration's transaction with foreign keys on, so tables are rebuilt:
-- create *_new, copy, drop the old table, rename (renaming rewrites the REFERENCES of the
-- other tables). player_sessions is dropped before players, so no cascade deletes a row.

CREATE TABLE players_new (
    id         BLOB PRIMARY KEY NOT NULL,
    game       TEXT NOT NULL,
    account_id TEXT NOT NULL,
    last_name  TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL,
    UNIQUE (game, account_id)
);
INSERT INTO players_new (id, game, account_id, last_name, first_seen, last_seen)
SELECT id, 'arma3', guid, last_name, first_seen, last_seen FROM players;

CREATE TABLE player_sessions_new (
    id        BLOB PRIMARY KEY NOT NULL,
    server_id BLOB NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    player_id BLOB NOT NULL REFERENCES players_new (id) ON DELETE CASCADE,
    joined_at TEXT NOT NULL,
    left_at   TEXT,
    ip        TEXT
);
INSERT INTO player_sessions_new (id, server_id, player_id, joined_at, left_at, ip)
SELECT id, server_id, player_id, joined_at, left_at, ip FROM player_sessions;
-- Older duplicate open sessions end when the newest open one began (that one stays open).
UPDATE player_sessions_new SET left_at = (
    SELECT MAX(n.joined_at) FROM player_sessions_new n
    WHERE n.server_id = player_sessions_new.server_id AND n.player_id = player_sessions_new.player_id
      AND n.left_at IS NULL AND (n.joined_at, n.id) > (player_sessions_new.joined_at, player_sessions_new.id)
)
WHERE left_at IS NULL AND EXISTS (
    SELECT 1 FROM player_sessions_new n
    WHERE n.server_id = player_sessions_new.server_id AND n.player_id = player_sessions_new.player_id
      AND n.left_at IS NULL AND (n.joined_at, n.id) > (player_sessions_new.joined_at, player_sessions_new.id)
);

DROP TABLE player_sessions;
DROP TABLE players;
ALTER TABLE players_new RENAME TO players;
ALTER TABLE player_sessions_new RENAME TO player_sessions;
CREATE INDEX players_last_seen ON players (last_seen);
CREATE INDEX player_sessions_server ON player_sessions (server_id, joined_at);
CREATE INDEX player_sessions_player ON player_sessions (player_id, joined_at);
CREATE INDEX player_sessions_joined ON player_sessions (joined_at);
CREATE UNIQUE INDEX player_sessions_open ON player_sessions (server_id, player_id) WHERE left_at IS NULL;

-- Current config, one row per (server, section); secrets encrypted by the controller's
-- secret box (nonce + ciphertext).
CREATE TABLE server_configs_new (
    server_id  BLOB NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    section    TEXT NOT NULL,
    content    TEXT NOT NULL,
    secrets    BLOB,
    revision   INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (server_id, section)
);
INSERT INTO server_configs_new (server_id, section, content, secrets, revision, updated_at)
SELECT server_id, section, content, secrets, revision, updated_at FROM server_configs;
DROP TABLE server_configs;
ALTER TABLE server_configs_new RENAME TO server_configs;

CREATE TABLE bans_new (
    id         BLOB PRIMARY KEY NOT NULL,
    server_id  BLOB REFERENCES servers (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('account', 'address')),
    target     TEXT NOT NULL,
    reason     TEXT NOT NULL,
    expires_at TEXT,
    created_by BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    removed_at TEXT
);
INSERT INTO bans_new (id, server_id, kind, target, reason, expires_at, created_by, created_at, removed_at)
SELECT id, server_id, CASE kind WHEN 'guid' THEN 'account' ELSE 'address' END, target, reason,
       expires_at, created_by, created_at, removed_at
FROM bans;
DROP TABLE bans;
ALTER TABLE bans_new RENAME TO bans;
CREATE INDEX bans_server ON bans (server_id, removed_at);
CREATE INDEX bans_target ON bans (kind, target);

UPDATE server_events SET kind = 'player_identified' WHERE kind = 'guid_verified';
