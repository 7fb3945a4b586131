-- pgbench script: every transaction places one brigade order the way brigade's PostgreSQL
-- store does when every check passes, in one statement (PLACE_IN_ONE_STATEMENT in
-- crates/brigade-store/src/postgres.rs): the same CTEs, tables and checks, with the rows of
-- the order bench/lua/order.lua places (one line of quantity 1, so one ticket) and no
-- Idempotency-Key, so the idempotency CTE inserts nothing.
--
-- Writes 1 row into orders (primary key + 2 indexes), 1 into order_lines, 1 into tickets
-- (primary key + 2 indexes) and 1 into order_events, after checking that the shop is open and
-- the item is on its menu, available, at this price and name, and cooked by this station.
--
-- Needs a database migrated by brigade and holding its demo data (`brigade migrate`,
-- `brigade demo-data`), and these variables, bound as parameters, so run it with
-- -M prepared (or -M extended) like brigade, which binds the values of a prepared statement:
--
--   pgbench -n -M prepared -f bench/sql/order.sql \
--     -D shop_id=<uuid> -D item_id=<uuid> -D item_name=<name> -D price=<minor units> \
--     -D station_id=<uuid of the station cooking the item's category at this shop> URL
--
-- New ids come from gen_random_uuid() (brigade uses UUIDv7), every time from now(); the other
-- values are those of such an order at the demo shop, written out.

WITH wanted AS (
    SELECT * FROM unnest(ARRAY[:item_id]::uuid[], ARRAY[:item_name]::text[], ARRAY[1]::bigint[],
        ARRAY[:price]::bigint[], ARRAY[:station_id]::uuid[])
        WITH ORDINALITY AS w(item_id, name, quantity, price_minor, station_id, line_no)
), valid AS (
    SELECT count(*) AS n FROM wanted w
    JOIN items i ON i.id = w.item_id AND i.price_minor = w.price_minor
        AND i.currency = 'EUR' AND i.name = w.name
    JOIN shop_items si ON si.item_id = w.item_id AND si.shop_id = :shop_id::uuid AND si.available
    JOIN station_categories sc ON sc.shop_id = :shop_id::uuid AND sc.category = i.category
        AND sc.station_id = w.station_id
), checked AS (
    SELECT EXISTS (SELECT 1 FROM shops WHERE id = :shop_id::uuid AND open)
        AND (SELECT n FROM valid) = cardinality(ARRAY[:item_id]::uuid[]) AS ok
), idempotency AS (
    INSERT INTO idempotency_keys (scope, key, request_hash, status, response_body, created_at)
    SELECT NULL::text, NULL::text, NULL::text, 201, NULL::text, now() FROM checked
    WHERE ok AND NULL::text IS NOT NULL
    ON CONFLICT (scope, key) DO NOTHING
    RETURNING 1
), placed AS (
    INSERT INTO orders (id, shop_id, status, version, total_minor, currency, delivery_lat,
        delivery_lon, distance_m, eta_seconds, estimated_ready_at, estimated_delivery_at,
        created_at, updated_at, placed_by)
    SELECT gen_random_uuid(), :shop_id::uuid, 'placed', 1, :price::bigint, 'EUR', 52.51, 13.40,
        1726, 671, now() + interval '240 seconds', now() + interval '671 seconds', now(), now(),
        'anonymous'
    FROM checked
    WHERE ok AND (NULL::text IS NULL OR EXISTS (SELECT 1 FROM idempotency))
    RETURNING id
), lines AS (
    INSERT INTO order_lines (order_id, line_no, item_id, name, quantity, unit_price_minor, station_id)
    SELECT placed.id, w.line_no - 1, w.item_id, w.name, w.quantity, w.price_minor, w.station_id
    FROM placed, wanted w
), tickets AS (
    INSERT INTO tickets (id, order_id, shop_id, station_id, status, work_seconds, created_at)
    SELECT t.id, placed.id, :shop_id::uuid, t.station_id, 'queued', t.work_seconds, now()
    FROM placed, unnest(ARRAY[gen_random_uuid()]::uuid[], ARRAY[:station_id]::uuid[],
        ARRAY[240]::bigint[]) AS t(id, station_id, work_seconds)
), events AS (
    INSERT INTO order_events (order_id, seq, status, actor, at)
    SELECT placed.id, 1, 'placed', 'anonymous', now() FROM placed
)
SELECT count(*) FROM placed;
