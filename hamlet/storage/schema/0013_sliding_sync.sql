-- Sliding sync connections (MSC4186), so a client's `pos` survives a restart.
-- A connection is one (user, device, conn_id); `conn_key` is random and new
-- each time the connection starts again, so positions of an old one never match.
CREATE TABLE sliding_sync_connections (
    conn_key TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    conn_id TEXT NOT NULL,
    last_used_ts BIGINT NOT NULL
);
CREATE UNIQUE INDEX sliding_sync_connections_owner
    ON sliding_sync_connections (user_id, device_id, conn_id);

-- The positions a client may still send: the stream token each stands for.
CREATE TABLE sliding_sync_positions (
    conn_key TEXT NOT NULL,
    position BIGINT NOT NULL,
    token TEXT NOT NULL,
    PRIMARY KEY (conn_key, position)
);

-- Which rooms the connection has: each row is what a response changed; the
-- state at a position is, per room, its newest row at or before it.
-- `sent_position` -1 means the connection no longer has the room.
CREATE TABLE sliding_sync_rooms (
    conn_key TEXT NOT NULL,
    position BIGINT NOT NULL,
    room_id TEXT NOT NULL,
    timeline_limit BIGINT NOT NULL,
    -- JSON list of [type, state_key].
    required_state TEXT NOT NULL,
    sent_position BIGINT NOT NULL,
    -- Whether the connection was told the room is a DM.
    is_dm BOOLEAN NOT NULL,
    PRIMARY KEY (conn_key, position, room_id)
);
