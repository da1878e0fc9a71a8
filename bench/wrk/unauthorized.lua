-- GET with a token that must be refused: wrk ... -s unauthorized.lua
-- Counts every answer other than 401 as wrong (wrk itself counts every 4xx
-- as an error).
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

wrong = 0

function response(status, headers, body)
   if status ~= 401 then
      wrong = wrong + 1
   end
end
