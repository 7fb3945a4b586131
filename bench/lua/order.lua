-- wrk script: every request places one brigade order.
--
-- POST /api/v1/orders with one line (quantity 1) of one item, delivered to central Berlin.
-- The shop and item come from the environment, so the caller can look them up on the
-- running server first:
--
--   SHOP_ID=<uuid> ITEM_ID=<uuid> TOKEN=<customer token> wrk -s bench/lua/order.lua http://127.0.0.1:3000
--
-- Every request sends an Idempotency-Key of its own, as a client that retries safely does (and
-- as the balancer needs to retry a POST): every request is a new order, and each claims and
-- settles its key.

local shop_id = os.getenv("SHOP_ID")
local item_id = os.getenv("ITEM_ID")
local token = os.getenv("TOKEN")
if not shop_id or shop_id == "" or not item_id or item_id == "" or not token or token == "" then
  io.stderr:write("order.lua: set SHOP_ID and ITEM_ID to a shop and an item on its menu, and TOKEN to a customer's login token\n")
  os.exit(2)
end

wrk.method = "POST"
wrk.path = "/api/v1/orders"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.body = string.format(
  '{"shop_id":"%s","items":[{"item_id":"%s","quantity":1}],"delivery":{"lat":52.51,"lon":13.40}}',
  shop_id, item_id)

-- A prefix per run, so that runs against the same database never reuse a key.
local prefix = string.format("bench-%d-%d-", os.time(), math.random(1, 1000000000))
local counter = 0

request = function()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = prefix .. counter
  return wrk.format()
end
