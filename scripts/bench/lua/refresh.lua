-- One login session per connection (BENCH_REFRESH_TOKENS, comma-separated, one per thread):
-- each answer's new refresh token is the next request's (rotation; a reused one is refused).
local token

function request()
   if not token then
      local i = 0
      for t in string.gmatch(os.getenv("BENCH_REFRESH_TOKENS"), "[^,]+") do
         i = i + 1
         if i == id then token = t end
      end
   end
   return wrk.format("POST", "/auth/jwt/refresh", {["Content-Type"] = "application/json"},
                     '{"refresh_token": "' .. token .. '"}')
end

function response(status, headers, body)
   local new = string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
   if new then token = new end
end
