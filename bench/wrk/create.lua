-- POST a new book each time: wrk ... -s create.lua URL/bookapi/books -- PREFIX
-- Titles are "Bench PREFIX-THREAD-N": PREFIX is random per run, N counts per
-- thread, so every title is new.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local prefix, n, headers = "bench", 0, {}

function init(args)
   prefix = (args[1] or "bench") .. "-" .. id
   for k, v in pairs(wrk.headers) do
      headers[k] = v
   end
   headers["Content-Type"] = "application/json"
end

function request()
   n = n + 1
   local body = string.format('{"title":"Bench %s-%d","author":"Bench Author"}', prefix, n)
   return wrk.format("POST", wrk.path, headers, body)
end
