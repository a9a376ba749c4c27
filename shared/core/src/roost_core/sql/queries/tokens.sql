-- insert_token --
-- A new api token; only its hash is stored.
INSERT INTO api_tokens (id, tenant_id, name, token_hash)
VALUES (%(id)s, %(tenant_id)s, %(name)s, %(token_hash)s);

-- token_by_hash --
-- The live token with this hash.
SELECT tenant_id, id, token_hash FROM api_tokens
WHERE token_hash = %(value)s AND revoked_at IS NULL;

-- token_by_id --
-- The live token with this id.
SELECT tenant_id, id, token_hash FROM api_tokens WHERE id = %(value)s AND revoked_at IS NULL;
