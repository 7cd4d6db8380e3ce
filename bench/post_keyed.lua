-- wrk script: POST bench/post.lua's body with an `Idempotency-Key` unique across wrk's
-- threads and runs (start time, thread number, counter), so each event is also a delivery
-- identity the console's search can find (bench/console.sh).
local threads = 0
local started = os.time()

function setup(thread)
  threads = threads + 1
  thread:set("prefix", started .. "-" .. threads .. "-")
end

local counter = 0

function request()
  counter = counter + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = prefix .. counter,
  }, '{"id": 7, "name": "Ann Example", "email": "Ann@Example.com", "qty": 3, "active": true}')
end
