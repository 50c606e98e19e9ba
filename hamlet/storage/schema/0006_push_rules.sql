-- Push rules: what each user changed relative to the server-default rules
-- (their own rules per kind in priority order, and the enabled flags and
-- actions of default rules), as one JSON document per user. The merged
-- ruleset is written alongside as the user's `m.push_rules` account data.
CREATE TABLE push_rules_user (
    user_id TEXT PRIMARY KEY,
    rules TEXT NOT NULL
);
