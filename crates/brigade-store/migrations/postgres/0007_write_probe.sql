-- One row that readiness rewrites while a replica's writes are failing (a full or read-only
-- disk, a standby after failover), to learn when writing works again without waiting for a
-- customer's order to try.

CREATE TABLE write_probe (
    id        BIGINT PRIMARY KEY,
    probed_at TIMESTAMPTZ NOT NULL
);
