-- Admin room management: rooms blocked by a server admin, and the indexes
-- a room purge needs to find everything of one room.

-- A blocked room refuses local joins and invites. The room need not be
-- known here: an admin may block a room before anyone joins it.
CREATE TABLE blocked_rooms (
    room_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    blocked_ts BIGINT NOT NULL
);

CREATE INDEX state_groups_room ON state_groups (room_id);
CREATE INDEX account_data_room ON account_data (room_id)
