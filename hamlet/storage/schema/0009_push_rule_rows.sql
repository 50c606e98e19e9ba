-- Push rules one row each, so that changing one rule writes one row (and
-- rarely its siblings' order) instead of the user's whole document.
-- Documents left in push_rules_user (0006) are moved here the first time
-- their user's rules are read (PushRulesStore.get).

-- A user's own rules; within (user_id, kind) the lowest `priority` comes
-- first. New rules take a priority between their neighbours'.
CREATE TABLE push_rules (
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    priority BIGINT NOT NULL,
    -- JSON: actions, enabled, and conditions or pattern.
    rule TEXT NOT NULL,
    PRIMARY KEY (user_id, kind, rule_id)
);

-- What a user changed of a server-default rule: JSON with `enabled`
-- and/or `actions`.
CREATE TABLE push_rules_default_changes (
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    changes TEXT NOT NULL,
    PRIMARY KEY (user_id, kind, rule_id)
);
