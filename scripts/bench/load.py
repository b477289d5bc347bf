"""The load: wrk, a separate process (C, epoll), driven by the Lua scenarios in lua/, for the
fast requests; `closed_loop` (Python threads) for the slow, hash-bound ones."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from scripts.bench.report import RoundResult, percentile

LUA = Path(__file__).resolve().parent / "lua"
INSTALL_HINT = (
    "make bench needs wrk (the HTTP load generator): "
    "sudo apt-get install wrk  (Debian/Ubuntu) or  brew install wrk  (macOS)"
)
# Scenarios that keep state per connection run one connection per wrk thread.
STATEFUL = {"refresh"}


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str:
    answer = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    first = (answer.stdout or answer.stderr).strip().splitlines()
    return first[0].split(" [")[0] if first else "wrk"


def parse(output: str) -> RoundResult:
    for line in output.splitlines():
        if line.startswith("BENCH-RESULT "):
            data = json.loads(line.removeprefix("BENCH-RESULT "))
            # wrk counts answers >= 400 among its requests: only successes count here.
            return RoundResult(
                requests=data["requests"] - data["status_errors"],
                seconds=data["duration_us"] / 1e6,
                p50_ms=data["p50_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
                errors=data["status_errors"] + data["socket_errors"] + data["timeouts"],
            )
    raise RuntimeError(f"wrk printed no result:\n{output[-2000:]}")


def run(
    port: int,
    scenario: str,
    seconds: float,
    connections: int,
    env: dict[str, str] | None = None,
) -> RoundResult:
    """One wrk run of `scenario` (lua/<scenario>.lua) against 127.0.0.1:port."""
    threads = connections if scenario in STATEFUL else min(2, connections)
    script = (LUA / "common.lua").read_text() + "\n" + (LUA / f"{scenario}.lua").read_text()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-") as file:
        file.write(script)
        file.flush()
        argv = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            file.name,
            f"http://127.0.0.1:{port}",
        ]
        answer = subprocess.run(
            argv, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False
        )
    if answer.returncode != 0:
        raise RuntimeError(f"wrk failed ({answer.returncode}): {answer.stderr[-2000:]}")
    return parse(answer.stdout)


WARMUP_LIMIT_SECONDS = 30.0
# A request of the closed loop: (method, path, body, headers), made from (connection, n).
MakeRequest = Callable[[int, int], tuple[str, str, bytes, dict[str, str]]]


def closed_loop(
    port: int,
    make_request: MakeRequest,
    connections: int,
    warmup: float,
    seconds: float,
    ok_status: int,
) -> RoundResult:
    """Python threads, one keep-alive connection each, one request after another, for the
    slow (hash-bound) requests: a few per second, so the client is nowhere near a bottleneck
    (its CPU share is recorded in `client_cpu`). Unlike wrk, it counts only what completes in
    a window that opens once the queue is full (see below): at a few requests per second a
    latency of seconds would otherwise leave a large share of a short run uncounted."""
    stop = threading.Event()
    lock = threading.Lock()
    done: list[tuple[float, float, bool]] = []  # (completed at, latency, succeeded)
    answered: set[int] = set()  # connections that have had an answer

    def worker(connection: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        n = 0
        try:
            while not stop.is_set():
                n += 1
                method, path, body, headers = make_request(connection, n)
                start = time.perf_counter()
                try:
                    conn.request(method, path, body=body, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    ok = response.status == ok_status
                except (OSError, http.client.HTTPException):
                    ok = False
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                end = time.perf_counter()
                with lock:
                    done.append((end, end - start, ok))
                    answered.add(connection)
        finally:
            conn.close()

    threads = [
        threading.Thread(target=worker, args=(c,), daemon=True) for c in range(1, connections + 1)
    ]
    for thread in threads:
        thread.start()
    try:
        # The window opens when every connection has had an answer (a loop that hashes inline
        # answers a burst all at once, at the end), and not before `warmup`.
        time.sleep(warmup)
        deadline = time.perf_counter() + WARMUP_LIMIT_SECONDS
        while len(answered) < connections and time.perf_counter() < deadline:
            time.sleep(0.05)
        opened, cpu_before = time.perf_counter(), time.process_time()
        time.sleep(seconds)
        closed, cpu = time.perf_counter(), time.process_time() - cpu_before
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    window = [(latency, ok) for end, latency, ok in done if opened <= end < closed]
    latencies = sorted(latency for latency, ok in window if ok)
    return RoundResult(
        requests=len(latencies),
        seconds=closed - opened,
        p50_ms=percentile(latencies, 50) * 1000 if latencies else 0.0,
        p99_ms=percentile(latencies, 99) * 1000 if latencies else 0.0,
        errors=sum(1 for _, ok in window if not ok),
        client_cpu=cpu / (closed - opened),
    )
