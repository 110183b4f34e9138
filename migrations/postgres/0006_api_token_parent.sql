-- API tokens minted by another API token record it (issue 10): revoking a token revokes
-- its descendants, and a child never outlives its parent. NULL = minted by a session.
-- Keep in step with ../sqlite/0006_api_token_parent.sql.
ALTER TABLE api_tokens ADD COLUMN parent_id UUID REFERENCES api_tokens (id) ON DELETE CASCADE;
CREATE INDEX api_tokens_parent ON api_tokens (parent_id);
