wrk.method = "GET"
wrk.path = "/health/live"
