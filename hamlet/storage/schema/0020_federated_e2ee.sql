-- End-to-end encryption across servers.

-- The device a device list stream row is about (NULL: the user's
-- cross-signing keys or signatures), so the `m.device_list_update` EDUs
-- sent for local users chain their `prev_id`s through device rows only.
ALTER TABLE device_lists_stream ADD COLUMN device_id TEXT;

-- Remote users' device lists, cached while they share a room with a local
-- user and kept current by their server's `m.device_list_update` EDUs.
-- stream_id is their server's position (NULL when the list came from
-- /user/keys/query, which gives none: the next update then resyncs).
CREATE TABLE remote_device_lists (
    user_id TEXT PRIMARY KEY,
    stream_id BIGINT,
    ts BIGINT NOT NULL
);

-- A cached remote device: key_json NULL when it has uploaded no keys.
CREATE TABLE remote_device_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    key_json TEXT,
    PRIMARY KEY (user_id, device_id)
);

-- Cached remote cross-signing keys (master and self_signing).
CREATE TABLE remote_cross_signing_keys (
    user_id TEXT NOT NULL,
    key_type TEXT NOT NULL,
    key_json TEXT NOT NULL,
    PRIMARY KEY (user_id, key_type)
);
