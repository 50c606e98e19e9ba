-- Answers to the federation transactions other servers sent us, kept for a
-- day (as Synapse's `received_transactions`): a server that retries a
-- transaction after we restarted gets the answer it missed, and the
-- transaction is not applied twice.
CREATE TABLE received_transactions (
    origin TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    answer TEXT NOT NULL,
    received_ts BIGINT NOT NULL,
    PRIMARY KEY (origin, txn_id)
);
CREATE INDEX received_transactions_ts ON received_transactions (received_ts);
