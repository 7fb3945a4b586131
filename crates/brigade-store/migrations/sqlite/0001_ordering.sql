-- Shops, stations, catalogue, orders, tickets, idempotency keys (SQLite).
-- Ids are UUID v7 stored as 16-byte blobs; times are RFC 3339 text in UTC.

CREATE TABLE shops (
    id          BLOB PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    region      TEXT NOT NULL,
    lat         REAL NOT NULL,
    lon         REAL NOT NULL,
    open        BOOLEAN NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE stations (
    id          BLOB PRIMARY KEY NOT NULL,
    shop_id     BLOB NOT NULL REFERENCES shops (id),
    name        TEXT NOT NULL,
    capacity    INTEGER NOT NULL CHECK (capacity > 0),
    created_at  TEXT NOT NULL,
    UNIQUE (shop_id, name)
);

-- Which station of a shop cooks a category, and how long one item takes there.
CREATE TABLE station_categories (
    station_id    BLOB NOT NULL REFERENCES stations (id),
    shop_id       BLOB NOT NULL REFERENCES shops (id),
    category      TEXT NOT NULL,
    prep_seconds  INTEGER NOT NULL CHECK (prep_seconds > 0),
    PRIMARY KEY (station_id, category),
    UNIQUE (shop_id, category)
);

CREATE TABLE items (
    id           BLOB PRIMARY KEY NOT NULL,
    sku          TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    category     TEXT NOT NULL,
    price_minor  INTEGER NOT NULL CHECK (price_minor >= 0),
    currency     TEXT NOT NULL,
    created_at   TEXT NOT NULL
);

-- An item is on a shop's menu when it has a row here (and the shop cooks its category).
CREATE TABLE shop_items (
    shop_id    BLOB NOT NULL REFERENCES shops (id),
    item_id    BLOB NOT NULL REFERENCES items (id),
    available  BOOLEAN NOT NULL,
    PRIMARY KEY (shop_id, item_id)
);

CREATE TABLE orders (
    id                     BLOB PRIMARY KEY NOT NULL,
    shop_id                BLOB NOT NULL REFERENCES shops (id),
    status                 TEXT NOT NULL,
    version                INTEGER NOT NULL,
    total_minor            INTEGER NOT NULL,
    currency               TEXT NOT NULL,
    delivery_lat           REAL NOT NULL,
    delivery_lon           REAL NOT NULL,
    distance_m             INTEGER NOT NULL,
    eta_seconds            INTEGER NOT NULL,
    estimated_ready_at     TEXT NOT NULL,
    estimated_delivery_at  TEXT NOT NULL,
    placed_by              TEXT NOT NULL,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL
);
CREATE INDEX orders_by_shop ON orders (shop_id, id);
CREATE INDEX orders_by_status ON orders (status, id);

CREATE TABLE order_lines (
    order_id          BLOB NOT NULL REFERENCES orders (id),
    line_no           INTEGER NOT NULL,
    item_id           BLOB NOT NULL REFERENCES items (id),
    name              TEXT NOT NULL,
    quantity          INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_minor  INTEGER NOT NULL,
    station_id        BLOB NOT NULL REFERENCES stations (id),
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE tickets (
    id            BLOB PRIMARY KEY NOT NULL,
    order_id      BLOB NOT NULL REFERENCES orders (id),
    shop_id       BLOB NOT NULL REFERENCES shops (id),
    station_id    BLOB NOT NULL REFERENCES stations (id),
    status        TEXT NOT NULL,
    work_seconds  INTEGER NOT NULL,
    claimed_by    TEXT,
    created_at    TEXT NOT NULL,
    claimed_at    TEXT,
    completed_at  TEXT
);
CREATE INDEX tickets_by_station ON tickets (station_id, status, id);
CREATE INDEX tickets_by_order ON tickets (order_id);

-- The status history of every order: the timeline and the audit trail of who changed what.
CREATE TABLE order_events (
    order_id  BLOB NOT NULL REFERENCES orders (id),
    seq       INTEGER NOT NULL,
    status    TEXT NOT NULL,
    actor     TEXT NOT NULL,
    at        TEXT NOT NULL,
    PRIMARY KEY (order_id, seq)
);

-- Idempotency-Key records: the first response to a key is replayed to every retry.
CREATE TABLE idempotency_keys (
    scope          TEXT NOT NULL,
    key            TEXT NOT NULL,
    request_hash   TEXT NOT NULL,
    status         INTEGER NOT NULL,
    response_body  TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
