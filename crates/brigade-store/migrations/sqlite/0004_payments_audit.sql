-- Payments and the audit trail (SQLite).

-- One payment per order, written before the provider is called, so a replica dying mid-call
-- leaves a row the reconciler on any replica finishes.
CREATE TABLE payments (
    id            BLOB PRIMARY KEY NOT NULL,
    order_id      BLOB NOT NULL UNIQUE REFERENCES orders (id),
    provider      TEXT NOT NULL,
    status        TEXT NOT NULL,
    reference     TEXT,
    amount_minor  INTEGER NOT NULL CHECK (amount_minor >= 0),
    currency      TEXT NOT NULL,
    reason        TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX payments_unsettled ON payments (status, updated_at)
    WHERE status IN ('pending', 'capturing', 'voiding');

-- The order an idempotency key placed: its final answer is written when the payment settles.
ALTER TABLE idempotency_keys ADD COLUMN order_id BLOB;
CREATE INDEX idempotency_keys_by_order ON idempotency_keys (order_id);

-- Every state change, appended in the change's own transaction.
CREATE TABLE audit_events (
    id          BLOB PRIMARY KEY NOT NULL,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    entity      TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    before      TEXT,
    after       TEXT,
    request_id  TEXT
);
CREATE INDEX audit_events_by_entity ON audit_events (entity, entity_id, id);
CREATE INDEX audit_events_by_actor ON audit_events (actor, id);

-- Append-only, whatever connects to the database.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
