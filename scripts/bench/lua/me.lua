-- GET /users/me with one access token (BENCH_TOKEN) for every connection.
wrk.method = "GET"
wrk.path = "/users/me"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
