-- API keys, in the shape the auth-apikey-sql plugin reads
-- (`SELECT hash, subject, name, roles, revoked FROM api_keys WHERE id = $1`; see
-- plugins/auth-apikey/README.md), plus the owner and the creation time for the keys page.
-- The secret is never stored: `hash` is the hex HMAC-SHA256 of it under the pepper.
CREATE TABLE api_keys (
    id         TEXT    PRIMARY KEY,
    hash       TEXT    NOT NULL,
    subject    TEXT    NOT NULL,            -- the identity's subject: the owner's user id
    name       TEXT,
    roles      TEXT    NOT NULL DEFAULT '[]', -- a JSON array; keys get none
    revoked    INTEGER NOT NULL DEFAULT 0,
    user_id    TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT  NOT NULL
);

CREATE INDEX api_keys_user ON api_keys (user_id);
