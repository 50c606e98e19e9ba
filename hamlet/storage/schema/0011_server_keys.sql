-- Remote servers' signing keys, as the keyring fetched them (directly or
-- through a notary), so a restart does not refetch every key and a notary
-- can answer for servers that are down.

-- The latest checked `/_matrix/key/v2/server` response of each server, kept
-- as received (its signatures included) for the notary to pass on.
-- `ts_valid_until_ms` is its `valid_until_ts` capped at 7 days after it was
-- fetched; `from_server` is who served it (the server or a notary).
CREATE TABLE server_keys_json (
    server_name TEXT PRIMARY KEY,
    from_server TEXT NOT NULL,
    ts_added_ms BIGINT NOT NULL,
    ts_valid_until_ms BIGINT NOT NULL,
    key_json TEXT NOT NULL
);

-- Every verify key ever seen per server, current or old: a key that drops
-- out of a newer response stays usable for events from before it expired.
-- `ts_valid_until_ms` is the capped validity of a current key or the
-- `expired_ts` of an old one (`expired_ts` set only for old keys).
CREATE TABLE server_signature_keys (
    server_name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    verify_key TEXT NOT NULL,
    ts_added_ms BIGINT NOT NULL,
    ts_valid_until_ms BIGINT NOT NULL,
    expired_ts BIGINT,
    PRIMARY KEY (server_name, key_id)
);
