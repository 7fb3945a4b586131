-- wrk script for the failover run: three menu reads for every order placed; every order
-- carries a fresh Idempotency-Key, so a balancer may retry it safely.
--
--   SHOP_ID=… ITEM_ID=… TOKEN=… wrk -s bench/balance/failover.lua http://127.0.0.1:8080

local shop_id = os.getenv("SHOP_ID")
local item_id = os.getenv("ITEM_ID")
local token = os.getenv("TOKEN")
local counter = 0
local thread_id = 0
local prefix = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000))

function setup(thread)
  thread_id = thread_id + 1
  thread:set("thread_id", thread_id)
end

local order = string.format(
  '{"shop_id":"%s","items":[{"item_id":"%s","quantity":1}],"delivery":{"lat":52.51,"lon":13.40}}',
  shop_id or "", item_id or "")
local menu = "/api/v1/shops/" .. (shop_id or "") .. "/menu"

function request()
  counter = counter + 1
  if counter % 4 == 0 then
    return wrk.format("POST", "/api/v1/orders", {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. token,
      ["Idempotency-Key"] = prefix .. "-" .. tostring(thread_id) .. "-" .. tostring(counter),
    }, order)
  end
  return wrk.format("GET", menu)
end

-- Failed answers are printed (status and the start of the body), so a run shows what failed.
function response(status, headers, body)
  if status >= 400 then
    io.stderr:write(string.format("failover.lua: %d %s\n", status, string.sub(body or "", 1, 200)))
  end
end
