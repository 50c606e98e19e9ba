-- Rooms as a DAG. `dag_events` holds every event this server has, in the
-- timeline or not: outliers (events without state, such as auth events
-- fetched from another server), rejected events (with why) and soft-failed
-- events. `events` becomes the view of the timeline: the accepted
-- non-outlier events clients are served, so every reader of the timeline
-- keeps reading `events`. Writers use `dag_events`.
--
-- stream_ordering is the local arrival order (every stored event gets
-- one); depth is the event's own, from the DAG. state_group is the state
-- *after* the event (for a rejected event the state before it, for an
-- outlier NULL).
CREATE TABLE dag_events (
    stream_ordering BIGINT PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT,
    sender TEXT NOT NULL,
    depth BIGINT NOT NULL,
    origin_server_ts BIGINT NOT NULL,
    state_group BIGINT,
    relates_to TEXT,
    rel_type TEXT,
    contains_url BOOLEAN NOT NULL DEFAULT FALSE,
    redacted_by TEXT,
    replaces_state TEXT,
    json TEXT NOT NULL,
    outlier BOOLEAN NOT NULL DEFAULT FALSE,
    soft_failed BOOLEAN NOT NULL DEFAULT FALSE,
    rejected_reason TEXT
);

INSERT INTO dag_events (stream_ordering, event_id, room_id, type, state_key, sender, depth,
    origin_server_ts, state_group, relates_to, rel_type, contains_url, redacted_by,
    replaces_state, json)
SELECT stream_ordering, event_id, room_id, type, state_key, sender, depth,
    origin_server_ts, state_group, relates_to, rel_type, contains_url, redacted_by,
    replaces_state, json
FROM events;

DROP TABLE events;

CREATE INDEX dag_events_room_stream ON dag_events (room_id, stream_ordering);
CREATE INDEX dag_events_relations ON dag_events (relates_to, rel_type, stream_ordering);

CREATE VIEW events AS
SELECT stream_ordering, event_id, room_id, type, state_key, sender, depth, origin_server_ts,
    state_group, relates_to, rel_type, contains_url, redacted_by, replaces_state, json
FROM dag_events
WHERE NOT outlier AND NOT soft_failed AND rejected_reason IS NULL;

-- prev_events edges, and auth_events edges, of every stored event.
CREATE TABLE event_edges (
    event_id TEXT NOT NULL,
    prev_event_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    PRIMARY KEY (event_id, prev_event_id)
);
CREATE INDEX event_edges_prev ON event_edges (prev_event_id);

CREATE TABLE event_auth (
    event_id TEXT NOT NULL,
    auth_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    PRIMARY KEY (event_id, auth_id)
);

-- Events already stored were all built locally (room versions 10 and 11,
-- whose references are plain event IDs).
INSERT INTO event_edges (event_id, prev_event_id, room_id)
SELECT e.event_id, j.value, e.room_id FROM dag_events e, {{JSON_EACH_PREV_EVENTS}};

INSERT INTO event_auth (event_id, auth_id, room_id)
SELECT e.event_id, j.value, e.room_id FROM dag_events e, {{JSON_EACH_AUTH_EVENTS}};

-- The room's forward extremities: accepted timeline events no other event
-- names as a prev_event yet. New local events point at them.
CREATE TABLE event_forward_extremities (
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
);

INSERT INTO event_forward_extremities (room_id, event_id)
SELECT e.room_id, e.event_id FROM dag_events e
WHERE e.stream_ordering = (SELECT MAX(l.stream_ordering) FROM dag_events l WHERE l.room_id = e.room_id);
