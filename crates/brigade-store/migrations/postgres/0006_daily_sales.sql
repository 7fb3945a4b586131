-- Precomputed daily sales per shop (PostgreSQL). Rewritten by the store's refresh for a whole
-- UTC day at a time, so a row is always the complete picture of its day as of `computed_at`.
-- An order counts on the UTC day it was placed (`orders.created_at`); revenue is what was
-- captured for that day's orders, in the orders' currency.

CREATE TABLE daily_sales (
    day            DATE NOT NULL,
    shop_id        UUID NOT NULL REFERENCES shops (id),
    currency       TEXT NOT NULL,
    orders         BIGINT NOT NULL,
    delivered      BIGINT NOT NULL,
    cancelled      BIGINT NOT NULL,
    revenue_minor  BIGINT NOT NULL,
    computed_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (day, shop_id, currency)
);

-- The refresh reads one day of orders by placement time.
CREATE INDEX orders_by_created_at ON orders (created_at);
