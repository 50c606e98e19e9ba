-- Application services: how far each service's event stream has been
-- turned into transactions, and the transactions not yet acknowledged.
-- A transaction keeps its ID across restarts, so a bridge that already
-- handled it recognises the retry (the spec's idempotency by txnId).
CREATE TABLE appservice_positions (
    as_id TEXT PRIMARY KEY,
    stream_ordering BIGINT NOT NULL,
    last_txn_id BIGINT NOT NULL
);
CREATE TABLE appservice_txns (
    as_id TEXT NOT NULL,
    txn_id BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (as_id, txn_id)
);
