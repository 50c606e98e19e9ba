-- The users side of the admin API: rate-limit overrides, erased users,
-- event reports, server-notice rooms and expiring (admin-issued) tokens.

-- Per-user override of rc_message (Synapse's ratelimit_override);
-- messages_per_second 0 means the user is not rate limited at all.
CREATE TABLE ratelimit_override (
    user_id TEXT NOT NULL PRIMARY KEY,
    messages_per_second BIGINT NOT NULL,
    burst_count BIGINT NOT NULL
);

-- Users deactivated with `erase`: their profile is gone for good.
CREATE TABLE erased_users (
    user_id TEXT NOT NULL PRIMARY KEY
);

CREATE TABLE event_reports (
    id {{SERIAL_PK}},
    received_ts BIGINT NOT NULL,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    reason TEXT,
    score INTEGER
);
CREATE INDEX event_reports_received ON event_reports (received_ts, id);

-- The room each user gets server notices in (until they leave it).
CREATE TABLE server_notice_rooms (
    user_id TEXT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL
);

-- Access tokens that expire (an admin's "login as user" with valid_until_ms).
CREATE TABLE access_token_expiry (
    token_hash TEXT NOT NULL PRIMARY KEY,
    valid_until_ms BIGINT NOT NULL
);
CREATE INDEX access_token_expiry_until ON access_token_expiry (valid_until_ms);
