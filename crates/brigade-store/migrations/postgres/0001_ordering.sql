-- Shops, stations, catalogue, orders, tickets, idempotency keys (PostgreSQL).
-- Ids are native UUIDs (version 7); times are TIMESTAMPTZ.

CREATE TABLE shops (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    region      TEXT NOT NULL,
    lat         DOUBLE PRECISION NOT NULL,
    lon         DOUBLE PRECISION NOT NULL,
    open        BOOLEAN NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE stations (
    id          UUID PRIMARY KEY,
    shop_id     UUID NOT NULL REFERENCES shops (id),
    name        TEXT NOT NULL,
    capacity    BIGINT NOT NULL CHECK (capacity > 0),
    created_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (shop_id, name)
);

-- Which station of a shop cooks a category, and how long one item takes there.
CREATE TABLE station_categories (
    station_id    UUID NOT NULL REFERENCES stations (id),
    shop_id       UUID NOT NULL REFERENCES shops (id),
    category      TEXT NOT NULL,
    prep_seconds  BIGINT NOT NULL CHECK (prep_seconds > 0),
    PRIMARY KEY (station_id, category),
    UNIQUE (shop_id, category)
);

CREATE TABLE items (
    id           UUID PRIMARY KEY,
    sku          TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    category     TEXT NOT NULL,
    price_minor  BIGINT NOT NULL CHECK (price_minor >= 0),
    currency     TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

-- An item is on a shop's menu when it has a row here (and the shop cooks its category).
CREATE TABLE shop_items (
    shop_id    UUID NOT NULL REFERENCES shops (id),
    item_id    UUID NOT NULL REFERENCES items (id),
    available  BOOLEAN NOT NULL,
    PRIMARY KEY (shop_id, item_id)
);

CREATE TABLE orders (
    id                     UUID PRIMARY KEY,
    shop_id                UUID NOT NULL REFERENCES shops (id),
    status                 TEXT NOT NULL,
    version                BIGINT NOT NULL,
    total_minor            BIGINT NOT NULL,
    currency               TEXT NOT NULL,
    delivery_lat           DOUBLE PRECISION NOT NULL,
    delivery_lon           DOUBLE PRECISION NOT NULL,
    distance_m             BIGINT NOT NULL,
    eta_seconds            BIGINT NOT NULL,
    estimated_ready_at     TIMESTAMPTZ NOT NULL,
    estimated_delivery_at  TIMESTAMPTZ NOT NULL,
    placed_by              TEXT NOT NULL,
    created_at             TIMESTAMPTZ NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL
);
CREATE INDEX orders_by_shop ON orders (shop_id, id);
CREATE INDEX orders_by_status ON orders (status, id);

CREATE TABLE order_lines (
    order_id          UUID NOT NULL REFERENCES orders (id),
    line_no           BIGINT NOT NULL,
    item_id           UUID NOT NULL REFERENCES items (id),
    name              TEXT NOT NULL,
    quantity          BIGINT NOT NULL CHECK (quantity > 0),
    unit_price_minor  BIGINT NOT NULL,
    station_id        UUID NOT NULL REFERENCES stations (id),
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE tickets (
    id            UUID PRIMARY KEY,
    order_id      UUID NOT NULL REFERENCES orders (id),
    shop_id       UUID NOT NULL REFERENCES shops (id),
    station_id    UUID NOT NULL REFERENCES stations (id),
    status        TEXT NOT NULL,
    work_seconds  BIGINT NOT NULL,
    claimed_by    TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    claimed_at    TIMESTAMPTZ,
    completed_at  TIMESTAMPTZ
);
CREATE INDEX tickets_by_station ON tickets (station_id, status, id);
CREATE INDEX tickets_by_order ON tickets (order_id);

-- The status history of every order: the timeline and the audit trail of who changed what.
CREATE TABLE order_events (
    order_id  UUID NOT NULL REFERENCES orders (id),
    seq       BIGINT NOT NULL,
    status    TEXT NOT NULL,
    actor     TEXT NOT NULL,
    at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (order_id, seq)
);

-- Idempotency-Key records: the first response to a key is replayed to every retry.
CREATE TABLE idempotency_keys (
    scope          TEXT NOT NULL,
    key            TEXT NOT NULL,
    request_hash   TEXT NOT NULL,
    status         BIGINT NOT NULL,
    response_body  TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
