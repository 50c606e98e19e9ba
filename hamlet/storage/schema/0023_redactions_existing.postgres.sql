-- Redactions stored before 0022 made `redactions`, by the event they
-- name. Their power level is not worked out again
-- here, so they apply to an event that comes later only by the same-server
-- rule. The event they name is in `content` from room version 11 on.
INSERT INTO redactions (event_id, redacts, room_id, sender, sender_may_redact)
SELECT event_id, doc ->> 'redacts', room_id, sender, FALSE FROM (
    SELECT e.event_id, e.room_id, e.sender, CASE
        WHEN r.room_version IN ('1', '2', '3', '4', '5', '6', '7', '8', '9', '10')
        THEN CAST(e.json AS jsonb)
        ELSE CAST(e.json AS jsonb) -> 'content' END AS doc
    FROM events e JOIN rooms r ON r.room_id = e.room_id
    WHERE e.type = 'm.room.redaction'
) x WHERE jsonb_typeof(doc -> 'redacts') = 'string';
