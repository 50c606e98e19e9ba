-- Accepted redactions by the event they name, so that an event stored after
-- its redaction (fetched later by /backfill, /get_missing_events or /event)
-- is stored redacted. `sender_may_redact`: the redacter had the redact
-- power level in the redaction's state (the other way a redaction applies,
-- same server as the original's sender, is known only with the original).
CREATE TABLE redactions (
    event_id TEXT NOT NULL PRIMARY KEY,
    redacts TEXT NOT NULL,
    room_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    sender_may_redact BOOLEAN NOT NULL
);
CREATE INDEX redactions_redacts ON redactions (redacts);
