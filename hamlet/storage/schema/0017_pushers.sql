-- HTTP pushers: where a user's notifications go, one row per (app_id,
-- pushkey, user). `device_id` is the device that set it: deleting the device
-- (or logging it out) deletes its pushers, as Synapse. `last_stream_ordering`
-- is the newest push action delivered (or given up on); `failing_since` is
-- set while the gateway keeps failing.
CREATE TABLE pushers (
    user_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    pushkey TEXT NOT NULL,
    device_id TEXT,
    kind TEXT NOT NULL,
    app_display_name TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag TEXT NOT NULL,
    lang TEXT NOT NULL,
    data TEXT NOT NULL,
    pushkey_ts BIGINT NOT NULL,
    last_stream_ordering BIGINT NOT NULL,
    failing_since BIGINT,
    PRIMARY KEY (app_id, pushkey, user_id)
);
CREATE INDEX pushers_user ON pushers (user_id, device_id);

-- What each local user's push rules said about an event that notifies them:
-- /notifications pages through these, pushers deliver them, the gateway's
-- unread count counts them.
CREATE TABLE event_push_actions (
    user_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    actions TEXT NOT NULL,
    highlight SMALLINT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, stream_ordering)
);
CREATE INDEX event_push_actions_room ON event_push_actions (user_id, room_id, stream_ordering);
CREATE INDEX event_push_actions_ts ON event_push_actions (ts);
