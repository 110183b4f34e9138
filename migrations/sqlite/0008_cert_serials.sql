-- Certificate serials per host (issue 10). Keep in step with ../postgres/0008_cert_serials.sql.
-- Revocation used to name only the agent id, so a certificate replaced by a renewal
-- stayed valid until it expired. Now the link accepts exactly these serials (lowercase
-- hex, as issued):
-- * cert_serial: the host's current certificate (set by enrollment and by each renewal).
-- * prev_cert_serial: the certificate a renewal replaced, accepted only until the new one
--   is first used (the agent may lose the renewal answer); cleared at that first use.
-- Hosts enrolled before this migration have neither: the first certificate they connect
-- with becomes current (it chains to our CA and names their agent id).
ALTER TABLE hosts ADD COLUMN cert_serial TEXT;
ALTER TABLE hosts ADD COLUMN prev_cert_serial TEXT;
