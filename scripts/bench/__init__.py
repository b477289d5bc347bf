"""`make bench`: Gatehouse against stock fastapi-users and a bare FastAPI ceiling, in one run.

- `peer_app.py`: stock fastapi-users 15, set up as its documentation shows;
- `ceiling_app.py`: a bare FastAPI endpoint, the most one uvicorn worker can answer;
- `servers.py`: starts and stops them (and Gatehouse) on free loopback ports;
- `load.py`: drives them with wrk (`lua/`);
- `report.py`: medians, ratios and the table written to docs/benchmarks.md;
- `__main__.py`: the run itself (`python -m scripts.bench`).
"""
