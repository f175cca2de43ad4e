-- wrk script: post distinct signed webhook events, each thread its own share of the file.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local file = args[1]
  local stride = tonumber(args[2])
  local path = args[3]
  events = {}
  local n = 0
  for line in io.lines(file) do
    if n % stride == id then
      local tab = line:find("\t", 1, true)
      table.insert(events, {line:sub(1, tab - 1), line:sub(tab + 1)})
    end
    n = n + 1
  end
  index = 0
  webhook_path = path
end

function request()
  index = index + 1
  local event = events[((index - 1) % #events) + 1]
  return wrk.format("POST", webhook_path, {
    ["Content-Type"] = "application/json",
    ["X-PagerDuty-Signature"] = event[1],
    ["User-Agent"] = "PagerDuty-Webhook/V3.0",
  }, event[2])
end
