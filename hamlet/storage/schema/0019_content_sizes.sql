-- The bytes of JSON of each account data entry and to-device message, kept
-- by their writers: a user's account data total and a sync's page of either
-- are summed from these rather than by reading every value (measuring a
-- 4 MiB account with LENGTH(content) reads all of it, about 10 ms). Rows
-- from before count characters, near enough.
ALTER TABLE account_data ADD COLUMN size BIGINT NOT NULL DEFAULT 0;
UPDATE account_data SET size = LENGTH(content);
ALTER TABLE device_inbox ADD COLUMN size BIGINT NOT NULL DEFAULT 0;
UPDATE device_inbox SET size = LENGTH(content);
