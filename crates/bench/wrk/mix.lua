-- wrk script for the order-status service: a read/write mix over a fixed set of orders.
-- Usage: wrk ... -s mix.lua URL -- WRITE_PERCENT ORDERS
local write_percent = 10
local orders = 10000
local statuses = { "placed", "paid", "packed", "shipped", "delivered" }

function init(args)
  write_percent = tonumber(args[1]) or write_percent
  orders = tonumber(args[2]) or orders
  -- Each wrk thread gets its own sequence.
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end

function request()
  local id = math.random(orders) - 1
  if math.random(100) <= write_percent then
    return wrk.format("PUT", "/orders/" .. id, nil, statuses[math.random(#statuses)])
  end
  return wrk.format("GET", "/orders/" .. id)
end
