-- The federation sender: per-destination retry state, what each destination
-- must still receive, and where catch-up starts after an outage.

-- As Synapse's: retry_last_ts 0 and retry_interval 0 mean "not backing off";
-- failure_ts is when the current run of failures began (NULL: none);
-- last_successful_stream_ordering is the newest PDU the destination took.
CREATE TABLE destinations (
    destination TEXT PRIMARY KEY,
    retry_last_ts BIGINT NOT NULL DEFAULT 0,
    retry_interval BIGINT NOT NULL DEFAULT 0,
    failure_ts BIGINT,
    last_successful_stream_ordering BIGINT
);

-- The newest local event queued for a destination in each room: what
-- catch-up sends when the destination comes back (it fetches the gap itself
-- with /get_missing_events), and the admin API's "rooms of a destination".
CREATE TABLE destination_rooms (
    destination TEXT NOT NULL,
    room_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (destination, room_id)
);
CREATE INDEX destination_rooms_stream ON destination_rooms (destination, stream_ordering);

-- PDUs queued for a reachable destination, sent in stream order. Dropped
-- (for catch-up) when the destination fails or falls too far behind.
CREATE TABLE federation_outbox_pdus (
    destination TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (destination, stream_ordering)
);

-- EDUs queued for a destination. A newer EDU with the same (edu_type,
-- edu_key) replaces the older one (a user's presence, their typing in a
-- room, their receipt in a room), so a destination that is down holds at
-- most one per key.
CREATE TABLE federation_outbox_edus (
    destination TEXT NOT NULL,
    edu_type TEXT NOT NULL,
    edu_key TEXT NOT NULL,
    position BIGINT NOT NULL,
    content TEXT NOT NULL,
    PRIMARY KEY (destination, edu_type, edu_key)
);
CREATE INDEX federation_outbox_edus_order ON federation_outbox_edus (destination, position);
