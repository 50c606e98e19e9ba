-- Full-text search (POST /search): an FTS5 table whose rowid is the event's
-- stream_ordering and whose text is what the event is found by (messages'
-- content.body, room names' content.name, topics' content.topic). The porter
-- stemmer over unicode61 finds "running" for "run", as PostgreSQL's english
-- configuration does. Redacted, purged and rejected events have no row.
CREATE VIRTUAL TABLE event_search USING fts5(value, tokenize = 'porter unicode61');

-- Events stored before search existed. json_extract() would cut a text at
-- an escaped NUL, so those become escaped spaces first (a same-length
-- escape, so the JSON stays valid).
INSERT INTO event_search (rowid, value)
SELECT stream_ordering, text FROM (
    SELECT stream_ordering, CASE type
        WHEN 'm.room.message' THEN json_extract(doc, '$.content.body')
        WHEN 'm.room.name' THEN json_extract(doc, '$.content.name')
        ELSE json_extract(doc, '$.content.topic') END AS text
    FROM (SELECT stream_ordering, type, redacted_by, replace(json, '\u0000', '\u0020') AS doc
        FROM events)
    WHERE type IN ('m.room.message', 'm.room.name', 'm.room.topic') AND redacted_by IS NULL
) WHERE typeof(text) = 'text' AND text != '';
