-- Ports a server occupies on its host, one row per port. The primary key is the
-- cross-replica guard: two controllers cannot both give a port of a host to a server.
-- Filled by the store in the same transaction as the server row (create/update);
-- arma3 reserves game_port..=game_port+4 plus the RCon port, palworld the two ports.
CREATE TABLE server_ports (
    host_id   BLOB NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    port      INTEGER NOT NULL,
    server_id BLOB NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    PRIMARY KEY (host_id, port)
);
CREATE INDEX server_ports_server ON server_ports (server_id);

INSERT OR IGNORE INTO server_ports (host_id, port, server_id)
SELECT s.host_id, s.game_port + k.k, s.id
FROM servers s, (SELECT 0 AS k UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4) k
WHERE s.game = 'arma3';
INSERT OR IGNORE INTO server_ports (host_id, port, server_id)
SELECT host_id, game_port, id FROM servers WHERE game <> 'arma3';
INSERT OR IGNORE INTO server_ports (host_id, port, server_id)
SELECT host_id, rcon_port, id FROM servers;
