-- The media repository: metadata of local uploads and their thumbnails.
-- The bytes live on disk under `media_store_path` (see handlers/media.py);
-- table and column names follow Synapse's so its tools read them alike.

-- One row per local media ID. `media_length` is NULL while an ID made by
-- POST /create waits for its upload; `quarantined_by` is the admin who
-- quarantined it (NULL: served normally).
CREATE TABLE local_media_repository (
    media_id TEXT PRIMARY KEY,
    media_type TEXT,
    media_length BIGINT,
    upload_name TEXT,
    user_id TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    quarantined_by TEXT
);
CREATE INDEX local_media_repository_user ON local_media_repository (user_id, created_ts);

-- Thumbnails generated so far, one per (media, size, method) of the
-- configured sizes; generated on first request and kept.
CREATE TABLE local_media_repository_thumbnails (
    media_id TEXT NOT NULL,
    thumbnail_width INTEGER NOT NULL,
    thumbnail_height INTEGER NOT NULL,
    thumbnail_method TEXT NOT NULL,
    thumbnail_type TEXT NOT NULL,
    thumbnail_length BIGINT NOT NULL,
    PRIMARY KEY (media_id, thumbnail_width, thumbnail_height, thumbnail_method)
);
