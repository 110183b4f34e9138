-- Ports a server occupies on its host, one row per port. The primary key is the
-- cross-replica guard: two controllers cannot both give a port of a host to a server.
-- Filled by the store in the same transaction as the server row (create/update);
-- arma3 reserves game_port..=game_port+4 plus the RCon port, palworld the two ports.
CREATE TABLE server_ports (
    host_id   UUID NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    port      BIGINT NOT NULL,
    server_id UUID NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    PRIMARY KEY (host_id, port)
);
CREATE INDEX server_ports_server ON server_ports (server_id);

INSERT INTO server_ports (host_id, port, server_id)
SELECT s.host_id, s.game_port + k, s.id
FROM servers s CROSS JOIN generate_series(0, 4) AS k
WHERE s.game = 'arma3'
ON CONFLICT DO NOTHING;
INSERT INTO server_ports (host_id, port, server_id)
SELECT host_id, game_port, id FROM servers WHERE game <> 'arma3'
ON CONFLICT DO NOTHING;
INSERT INTO server_ports (host_id, port, server_id)
SELECT host_id, rcon_port, id FROM servers
ON CONFLICT DO NOTHING;
