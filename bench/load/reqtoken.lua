-- wrk script for single-use request tokens: each wrk thread sends its own
-- share of the pre-signed tokens (lines i with i % nthreads == id), so that
-- no token is sent twice.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  nthreads = tonumber(args[2])
  tokens = {}
  local i = 0
  for line in io.lines(args[1]) do
    if i % nthreads == id then table.insert(tokens, line) end
    i = i + 1
  end
  next_token = 1
end

function request()
  local t = tokens[next_token]
  next_token = next_token + 1
  if next_token > #tokens then next_token = 1 end -- exhausted: replays would show as non-2xx
  return wrk.format("GET", "/creditscore", { ["Authorization"] = "Bearer " .. t })
end
