-- A local user's membership of a room this server is not in (a knock made
-- through another server): the event is an outlier in `dag_events` (which
-- finds its room version through `rooms`, which has no row for such a room,
-- so it is kept here too) and `room_memberships` lists it for /sync, which
-- shows `stripped_state` (JSON list: what the resident server answered, then
-- the member event itself, stripped) instead of a current state we lack.
CREATE TABLE out_of_band_memberships (
    event_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    room_version TEXT NOT NULL,
    stripped_state TEXT NOT NULL
);
CREATE INDEX out_of_band_memberships_room ON out_of_band_memberships (room_id, user_id);
