-- Access tokens (JWTs) of a user issued before this instant (microseconds since the Unix
-- epoch) are refused: bumped on logout, disable, role change and password change.
ALTER TABLE users ADD COLUMN tokens_valid_after BIGINT NOT NULL DEFAULT 0;
