-- POST a new book each time: wrk ... -s create.lua URL/bookapi/books -- PREFIX [TOKEN...]
-- Titles are "Bench PREFIX-THREAD-N": PREFIX is random per run, N counts per
-- thread, so every title is new. TOKENs, if given, are used in turn, one per
-- request, as many users would send them; otherwise the request carries
-- whatever Authorization header wrk was given.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local prefix, n, headers, tokens = "bench", 0, {}, {}

function init(args)
   prefix = (args[1] or "bench") .. "-" .. id
   for i = 2, #args do
      tokens[#tokens + 1] = "Bearer " .. args[i]
   end
   for k, v in pairs(wrk.headers) do
      headers[k] = v
   end
   headers["Content-Type"] = "application/json"
end

function request()
   n = n + 1
   if #tokens > 0 then
      headers["Authorization"] = tokens[(n + id) % #tokens + 1]
   end
   local body = string.format('{"title":"Bench %s-%d","author":"Bench Author"}', prefix, n)
   return wrk.format("POST", wrk.path, headers, body)
end
