-- Game-neutral storage (issue 9). Keep in step with ../sqlite/0005_game_neutral.sql.
-- * players are keyed by (game, account_id): the game's own account id (Arma 3: the
--   BattlEye GUID, so existing rows become game 'arma3', account_id = guid); steam_id goes.
-- * player_sessions: at most one open session per (server, player).
-- * server_configs.section is free text: the controller's game registry validates names.
-- * bans.kind is 'account' or 'address' (was 'guid' / 'ip').
-- * server events of kind 'guid_verified' are now 'player_identified'. Their `data` (and
--   that of older player events) keeps the protocol version 1 payload it was stored with
--   (BattlEye `number`/`guid`/`ip` rather than `key`/`account`/`address`).

ALTER TABLE players ADD COLUMN game TEXT NOT NULL DEFAULT 'arma3';
ALTER TABLE players ALTER COLUMN game DROP DEFAULT;
ALTER TABLE players RENAME COLUMN guid TO account_id;
ALTER TABLE players DROP CONSTRAINT players_guid_key;
ALTER TABLE players DROP COLUMN steam_id;
ALTER TABLE players ADD CONSTRAINT players_game_account_id_key UNIQUE (game, account_id);

-- Older duplicate open sessions end when the newest open one began (that one stays open).
UPDATE player_sessions s SET left_at = n.newest
FROM (
    SELECT server_id, player_id, MAX(joined_at) AS newest,
           (ARRAY_AGG(id ORDER BY joined_at DESC, id DESC))[1] AS keep
    FROM player_sessions WHERE left_at IS NULL
    GROUP BY server_id, player_id HAVING COUNT(*) > 1
) n
WHERE s.left_at IS NULL AND s.server_id = n.server_id AND s.player_id = n.player_id AND s.id <> n.keep;
CREATE UNIQUE INDEX player_sessions_open ON player_sessions (server_id, player_id) WHERE left_at IS NULL;

ALTER TABLE server_configs DROP CONSTRAINT server_configs_section_check;

ALTER TABLE bans DROP CONSTRAINT bans_kind_check;
UPDATE bans SET kind = CASE kind WHEN 'guid' THEN 'account' ELSE 'address' END;
ALTER TABLE bans ADD CONSTRAINT bans_kind_check CHECK (kind IN ('account', 'address'));

UPDATE server_events SET kind = 'player_identified' WHERE kind = 'guid_verified';
