-- The same request over and over: wrk ... -s static.lua -- METHOD [BODY]
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
   wrk.method = args[1] or "GET"
   if args[2] and args[2] ~= "" then
      wrk.body = args[2]
      wrk.headers["Content-Type"] = "application/json"
   end
end
