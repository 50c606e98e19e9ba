-- OpenID tokens a user hands to a widget or integration manager, which
-- checks them with GET /_matrix/federation/v1/openid/userinfo.
CREATE TABLE openid_tokens (
    token TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    valid_until_ms BIGINT NOT NULL
);
CREATE INDEX openid_tokens_user ON openid_tokens (user_id, valid_until_ms);
CREATE INDEX openid_tokens_expiry ON openid_tokens (valid_until_ms);
