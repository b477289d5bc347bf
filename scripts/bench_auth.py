"""Does a burst of logins stall the rest of the API? (`make bench-auth`)

Starts the real server (production settings, a fresh migrated SQLite file, a free port),
then measures in one run:
- /health/live latency idle, then during 20 concurrent logins (p50, p99);
- the stall ratio: p99 during logins / idle p99 (stock fastapi-users, hashing on the event
  loop, measured 250-420 on a 2-core machine; the target is <= 10);
- logins per second against the hash-bound limit: cores / CPU seconds of one argon2 verify
  (measured here with time.process_time around a pwdlib verify).
Writes its own section of docs/benchmarks.md (the rest is `make bench`'s) and stops the
server it started. `make bench` reuses `measure` for its stall-ratio row.
"""

from __future__ import annotations

import http.client
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from scripts.bench.report import percentile, put_section
from scripts.bench.servers import MailSink, Server, request, start_gatehouse

ROOT = Path(__file__).resolve().parent.parent
SECTION = "bench-auth"
OUTPUT = ROOT / "docs" / "benchmarks.md"
CONCURRENT_LOGINS = 20
USERS = 20  # one account per client: five logins of one account at once would meet its limit
PASSWORD = "bench passphrase that is long enough"  # noqa: S105 - a throwaway test account
IDLE_SECONDS = 3.0
LOAD_SECONDS = 8.0
PROBE_INTERVAL = 0.01


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cpu_seconds_per_verify() -> float:
    """CPU time (all threads: argon2's lanes run in their own) of one verify, median of 5."""
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    hasher = PasswordHash((Argon2Hasher(),))
    hashed = hasher.hash(PASSWORD)
    samples = []
    for _ in range(5):
        start = time.process_time()
        hasher.verify(PASSWORD, hashed)
        samples.append(time.process_time() - start)
    return statistics.median(samples)


# Stock fastapi-users behaviour, for comparison only: the same app with every hash and zxcvbn
# run inline on the event loop (a patch applied in the benchmark's server process, not a
# setting: production has no way to turn it on).
STOCK_BOOTSTRAP = """
import sys
from modules.users import hashing

async def _inline(self, function, *args):
    return function(*args)

hashing.PasswordHasher.run = _inline
from app.cli import main
sys.exit(main(sys.argv[1:]))
"""


def start_server(workdir: Path, mail_url: str, stock: bool = False) -> Server:
    return start_gatehouse(
        workdir,
        mail_url,
        f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        extra_env={
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "WARNING",
            # Every client of the benchmark is 127.0.0.1: the per-address flood budgets would
            # turn the load phase into 429s.
            "LOGINS_PER_ADDRESS": "1000000000",
            "REGISTRATIONS_PER_ADDRESS": "1000000",
        },
        entry=["-c", STOCK_BOOTSTRAP] if stock else None,
        name="stock" if stock else "gatehouse",
    )


def register(port: int, email: str) -> None:
    body = f'{{"email": "{email}", "password": "{PASSWORD}"}}'.encode()
    status, answer = request(
        port, "POST", "/auth/register", body, {"Content-Type": "application/json"}
    )
    if status != 201:
        raise RuntimeError(f"register failed: {status} {answer[:200]!r}")


def probe(port: int, seconds: float) -> list[float]:
    """Latency of /health/live, one request at a time over a keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    samples = []
    end = time.perf_counter() + seconds
    try:
        while time.perf_counter() < end:
            start = time.perf_counter()
            status, _ = request(port, "GET", "/health/live", connection=conn)
            samples.append(time.perf_counter() - start)
            if status != 200:
                raise RuntimeError(f"/health/live answered {status}")
            time.sleep(PROBE_INTERVAL)
    finally:
        conn.close()
    return samples


@dataclass
class LoginResults:
    ok: int = 0
    failed: int = 0
    latencies: list[float] | None = None
    threads: list[threading.Thread] | None = None


def login_storm(port: int, emails: list[str], stop: threading.Event) -> LoginResults:
    results = LoginResults(latencies=[])
    lock = threading.Lock()

    def worker(email: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        form = urlencode({"username": email, "password": PASSWORD}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        try:
            while not stop.is_set():
                start = time.perf_counter()
                try:
                    status, _ = request(port, "POST", "/auth/jwt/login", form, headers, conn)
                except (OSError, http.client.HTTPException):
                    with lock:
                        results.failed += 1
                    return
                elapsed = time.perf_counter() - start
                with lock:
                    if status == 200:
                        results.ok += 1
                        assert results.latencies is not None
                        results.latencies.append(elapsed)
                    else:
                        results.failed += 1
        finally:
            conn.close()

    threads = [
        threading.Thread(target=worker, args=(emails[n % len(emails)],), daemon=True)
        for n in range(CONCURRENT_LOGINS)
    ]
    for thread in threads:
        thread.start()
    results.threads = threads
    return results


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


@dataclass
class Measurement:
    idle: list[float]
    loaded: list[float]
    logins: int
    failed: int
    seconds: float
    login_latencies: list[float]

    @property
    def stall(self) -> float:
        return percentile(self.loaded, 99) / percentile(self.idle, 99)

    @property
    def rate(self) -> float:
        return self.logins / self.seconds


def measure(port: int, emails: list[str], idle_seconds: float, load_seconds: float) -> Measurement:
    request(port, "GET", "/health/live")  # warm up
    idle = probe(port, idle_seconds)
    stop = threading.Event()
    storm = login_storm(port, emails, stop)
    try:
        time.sleep(1.0)  # let the burst build up before measuring
        started_ok, started = storm.ok, time.perf_counter()
        loaded = probe(port, load_seconds)
        elapsed = time.perf_counter() - started
        logins = storm.ok - started_ok
    finally:
        stop.set()
        # The logins in flight end before the caller moves on (or stops the server).
        for thread in storm.threads or []:
            thread.join(timeout=60)
    assert storm.latencies is not None
    return Measurement(idle, loaded, logins, storm.failed, elapsed, list(storm.latencies))


def table(ours: Measurement, stock: Measurement | None, cores: int, verify_cpu: float) -> str:
    bound = cores / verify_cpu

    def row(name: str, value: Any) -> str:
        cells = [value(ours)] + ([value(stock)] if stock is not None else [])
        return f"| {name} | " + " | ".join(cells) + " |"

    header = "| measure | Gatehouse (low-priority hashing pool) |"
    rule = "|---|---|"
    if stock is not None:
        header += " stock (hashing on the event loop) |"
        rule += "---|"
    lines = [
        header,
        rule,
        row("/health/live p50, idle", lambda m: ms(percentile(m.idle, 50))),
        row("/health/live p99, idle", lambda m: ms(percentile(m.idle, 99))),
        row(
            f"/health/live p50, {CONCURRENT_LOGINS} concurrent logins",
            lambda m: ms(percentile(m.loaded, 50)),
        ),
        row(
            f"/health/live p99, {CONCURRENT_LOGINS} concurrent logins",
            lambda m: ms(percentile(m.loaded, 99)),
        ),
        row(
            "**stall ratio** (p99 during logins / idle p99; target <= 10)",
            lambda m: f"**{m.stall:.1f}**",
        ),
        row("successful logins per second", lambda m: f"{m.rate:.1f}"),
        row(
            f"logins / hash-bound limit ({bound:.1f}/s = {cores} cores / "
            f"{verify_cpu * 1000:.0f} ms CPU per verify)",
            lambda m: f"{m.rate / bound:.0%}",
        ),
        row(
            "login latency p50 / p99",
            lambda m: (
                f"{ms(percentile(m.login_latencies, 50))} / {ms(percentile(m.login_latencies, 99))}"
            ),
        ),
        row("failed logins (Gatehouse: must be 0)", lambda m: str(m.failed)),
        row("probe samples idle / during logins", lambda m: f"{len(m.idle)} / {len(m.loaded)}"),
    ]
    return "\n".join(lines)


def main() -> int:
    cores = usable_cores()
    load_before = os.getloadavg()[0]  # other work on the host skews every number below
    verify_cpu = cpu_seconds_per_verify()
    with_stock = os.environ.get("BENCH_STOCK", "1") != "0"
    emails = [f"bench{n}@example.com" for n in range(USERS)]
    stock: Measurement | None = None
    with tempfile.TemporaryDirectory(prefix="bench-auth-") as tmp, MailSink() as mail:
        workdir = Path(tmp)
        mail_url = mail.url
        try:
            server = start_server(workdir, mail_url)
        except RuntimeError as exc:
            # A build whose mailer knows only console:// (logins send no mail anyway).
            if "MAIL_URL" not in str(exc):
                raise
            mail_url = "console://"
            server = start_server(workdir, mail_url)
        try:
            for email in emails:
                register(server.port, email)
            ours = measure(server.port, emails, IDLE_SECONDS, LOAD_SECONDS)
        finally:
            server.stop()
        if with_stock:
            server = start_server(workdir, mail_url, stock=True)
            try:
                stock = measure(server.port, emails, IDLE_SECONDS, LOAD_SECONDS)
            finally:
                server.stop()

    section = (
        "## Logins do not stall the API (`make bench-auth`)\n\n"
        "`scripts/bench_auth.py` starts the real server (`python -m app serve`, "
        "ENVIRONMENT=production, SQLite, default settings: argon2id m=64 MiB t=3 p=4), "
        f"probes `/health/live` one request at a time for {IDLE_SECONDS:.0f} s idle, then "
        f"for {LOAD_SECONDS:.0f} s while {CONCURRENT_LOGINS} clients log in without pause "
        f"({USERS} accounts; successful logins never count toward the rate limit). It then "
        "does the same with the hashing patched back onto the event loop, as stock "
        "fastapi-users does it (BENCH_STOCK=0 skips that part).\n\n"
        f"Last run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cores} cores, "
        f"Python {sys.version.split()[0]}, MAIL_URL {mail_url.split(':')[0]}, host load "
        f"average {load_before:.1f} before the run.\n\n"
        f"{table(ours, stock, cores, verify_cpu)}\n\n"
        "Gatehouse's hashing pool has one thread per core (PASSWORD_HASH_WORKERS), enough to "
        "keep every core hashing, at nice +10 and SCHED_BATCH (PASSWORD_HASH_NICE), so the "
        "event loop preempts it whenever it has work. A login queues for the pool instead of "
        "stalling everyone. The niced pool also yields to other "
        "processes on the host: when the host is busy, logins slow down first. Idle p99 is "
        "sensitive to other load on the host; compare the two columns of one run.\n"
    )
    # Only this section of the page: the rest belongs to `make bench` (scripts/bench/).
    OUTPUT.parent.mkdir(exist_ok=True)
    page = OUTPUT.read_text() if OUTPUT.exists() else "# Benchmarks\n"
    OUTPUT.write_text(put_section(page, SECTION, section))
    print(section)
    # Stock's failures are part of what it shows (logins timing out behind a stalled loop).
    return 0 if ours.failed == 0 and ours.logins > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
