-- wrk script: POST customer events whose quantity (1–7) and `active` flag vary with a counter,
-- so a changed mapping changes some recorded executions and not others (bench/dry_run.sh).
local counter = 0

function request()
  counter = counter + 1
  local qty = counter % 7 + 1
  local active = (counter % 10 ~= 0) and "true" or "false"
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" },
    '{"id": ' .. counter .. ', "name": "Ann Example", "email": "Ann@Example.com", "qty": ' .. qty .. ', "active": ' .. active .. '}')
end
