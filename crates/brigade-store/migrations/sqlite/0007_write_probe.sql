-- One row that readiness rewrites while a replica's writes are failing (a full or read-only
-- disk), to learn when writing works again without waiting for a customer's order to try.

CREATE TABLE write_probe (
    id        INTEGER PRIMARY KEY,
    probed_at TEXT NOT NULL
);
