-- Full-text search (POST /search): each searchable event's text as an
-- english tsvector, keyed by the event's stream_ordering, behind a GIN
-- index. The text is what the event is found by (messages' content.body,
-- room names' content.name, topics' content.topic). Redacted, purged and
-- rejected events have no row.
CREATE TABLE event_search (
    stream_ordering BIGINT PRIMARY KEY,
    vector TSVECTOR NOT NULL
);
CREATE INDEX event_search_vector ON event_search USING GIN (vector);

-- Events stored before search existed. PostgreSQL text holds no NUL, so
-- the escaped NULs of the stored JSON become escaped spaces first (a
-- same-length escape, so the JSON stays valid).
INSERT INTO event_search (stream_ordering, vector)
SELECT stream_ordering, to_tsvector('english', text) FROM (
    SELECT stream_ordering, CASE type
        WHEN 'm.room.message' THEN doc -> 'content' ->> 'body'
        WHEN 'm.room.name' THEN doc -> 'content' ->> 'name'
        ELSE doc -> 'content' ->> 'topic' END AS text,
        CASE type
        WHEN 'm.room.message' THEN json_typeof(doc -> 'content' -> 'body')
        WHEN 'm.room.name' THEN json_typeof(doc -> 'content' -> 'name')
        ELSE json_typeof(doc -> 'content' -> 'topic') END AS kind
    FROM (
        SELECT stream_ordering, type, replace(json, '\u0000', '\u0020')::json AS doc
        FROM events
        WHERE type IN ('m.room.message', 'm.room.name', 'm.room.topic')
            AND redacted_by IS NULL
    ) AS raw
) AS extracted WHERE kind = 'string' AND text != '';
