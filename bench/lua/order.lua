-- wrk script: every request places one brigade order.
--
-- POST /api/v1/orders with one line (quantity 1) of one item, delivered to central Berlin.
-- The shop and item come from the environment, so the caller can look them up on the
-- running server first:
--
--   SHOP_ID=<uuid> ITEM_ID=<uuid> TOKEN=<customer token> wrk -s bench/lua/order.lua http://127.0.0.1:3000
--
-- No Idempotency-Key is sent: every request is a new order.

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
