"""`make bench` (`python -m scripts.bench`): see scripts/bench/__init__.py and the page it
writes, docs/benchmarks.md.

BENCH_QUICK=1: one short round per database, printed, the page left alone (a smoke run).
BENCH_ROUNDS=N: rounds per measurement (default 3; the table shows medians).
BENCH_POSTGRES=0: SQLite only. BENCH_POSTGRES_URL: the server to make throwaway databases on
(default postgresql://postgres@127.0.0.1:5432/postgres). BENCH_REDIS_URL: the Redis Gatehouse
shares between its workers on PostgreSQL, the production profile (default
redis://127.0.0.1:6379/0; without an answer there, Gatehouse runs without, and the page says so).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from urllib.parse import urlencode

import asyncpg  # type: ignore[import-untyped]

from scripts import bench_auth
from scripts.bench import load
from scripts.bench.report import (
    CEILING,
    GATEHOUSE,
    PEER,
    SCENARIOS,
    Results,
    StallRound,
    rewrite_page,
    table,
    targets_list,
)
from scripts.bench.servers import (
    ROOT,
    MailSink,
    Server,
    request,
    start_ceiling,
    start_gatehouse,
    start_peer,
)

OUTPUT = ROOT / "docs" / "benchmarks.md"
SECTION = "bench"
CONNECTIONS = 16  # wrk, for the fast requests
# Login and register are bound by argon2 (a few per second on 2 cores): 4 keep both cores
# hashing; more only lengthen the queue behind the hashes. Few matters for the peer: its loop
# answers a burst of N hashing requests all at once, after N hashes (asyncio's ready queue is
# FIFO), so N connections complete in bursts of N, and a short window would count whole bursts.
SLOW_CONNECTIONS = 4
SLOW = {"login", "register"}
ACCOUNTS = max(CONNECTIONS, bench_auth.USERS)  # bench1..: one per login connection
PASSWORD = bench_auth.PASSWORD
# Gatehouse's per-address limits would end a login or register run after a few requests from
# the one benchmark address; stock fastapi-users has none. Raised here, so both sides do the
# same work (failed-login limits stay: every benchmark login succeeds).
RAISED_LIMITS = {"REGISTRATIONS_PER_ADDRESS": "1000000", "LOGINS_PER_ADDRESS": "1000000"}
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Plan:
    rounds: int
    fast_seconds: float  # /health/live, /users/me, refresh
    slow_seconds: float  # login, register: a few hashes per second
    warmup_seconds: float  # before a slow window opens: the queue behind the hashes fills
    idle_seconds: float  # the stall measure (bench_auth.measure)
    load_seconds: float
    quick: bool

    @classmethod
    def from_environ(cls) -> Plan:
        if os.environ.get("BENCH_QUICK") == "1":
            return cls(1, 1, 3, 1, 1, 2, quick=True)
        return cls(int(os.environ.get("BENCH_ROUNDS", "3")), 3, 5, 1.5, 2, 3, quick=False)


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def gatehouse_argon2() -> str:
    """Gatehouse's argon2id parameters, read from a hash it makes: 'memory,time,parallelism'."""
    from modules.users.hashing import default_password_hash

    hashed = default_password_hash().hash(secrets.token_urlsafe(8))
    found = re.search(r"\$argon2id\$v=\d+\$m=(\d+),t=(\d+),p=(\d+)\$", hashed)
    if found is None:
        raise RuntimeError("Gatehouse's default hash is not argon2id: update scripts/bench")
    return ",".join(found.groups())


def slow_request(scenario: str, run_id: str) -> load.MakeRequest:
    """Login: one account per connection (bench<c>@example.com), so no per-account limit
    decides. Register: a new address per request (run, round, connection, counter)."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    json_type = {"Content-Type": "application/json"}

    def login_request(connection: int, _: int) -> tuple[str, str, bytes, dict[str, str]]:
        body = urlencode({"username": f"bench{connection}@example.com", "password": PASSWORD})
        return "POST", "/auth/jwt/login", body.encode(), form

    def register_request(connection: int, n: int) -> tuple[str, str, bytes, dict[str, str]]:
        email = f"r{run_id}-{connection}-{n}@example.com"
        body = json.dumps({"email": email, "password": PASSWORD})
        return "POST", "/auth/register", body.encode(), json_type

    return login_request if scenario == "login" else register_request


def register_accounts(port: int, count: int) -> list[str]:
    emails = [f"bench{n}@example.com" for n in range(1, count + 1)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda email: bench_auth.register(port, email), emails))
    return emails


def login(port: int, email: str) -> dict[str, str]:
    form = urlencode({"username": email, "password": PASSWORD}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, body = request(port, "POST", "/auth/jwt/login", form, headers)
    if status != 200:
        raise RuntimeError(f"login failed: {status} {body[:200]!r}")
    answer: dict[str, str] = json.loads(body)
    return answer


def refresh_tokens(port: int, emails: list[str]) -> str:
    """A fresh login session per connection (a refresh run leaves its last tokens unknown)."""
    with ThreadPoolExecutor(CONNECTIONS) as pool:
        pairs = list(pool.map(lambda email: login(port, email), emails[:CONNECTIONS]))
    return ",".join(pair["refresh_token"] for pair in pairs)


def postgres_reachable(base_url: str) -> bool:
    async def check() -> None:
        conn = await asyncpg.connect(base_url, timeout=5)
        await conn.close()

    try:
        asyncio.run(check())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


def redis_reachable(url: str) -> bool:
    from redis import Redis
    from redis.exceptions import RedisError

    client = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        return bool(client.ping())
    except (OSError, RedisError):
        return False
    finally:
        client.close()


@contextmanager
def postgres_databases(base_url: str, names: list[str]) -> Iterator[list[str]]:
    """Throwaway databases on the running server, dropped after (also on failure)."""

    async def execute(*statements: str) -> None:
        conn = await asyncpg.connect(base_url, timeout=5)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(execute(*(f'CREATE DATABASE "{name}"' for name in names)))
    try:
        server = base_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        yield [f"{server}/{name}" for name in names]
    finally:
        asyncio.run(execute(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names)))


def measure_database(
    label: str,
    plan: Plan,
    workers: int,
    urls: dict[str, str],
    mail_url: str,
    bound: float,
    gatehouse_env: dict[str, str] | None = None,
) -> Results:
    """Start the three servers, then every scenario round after round (the servers take
    turns, so a change in host load hits all three alike), then stop them."""
    results = Results(hash_bound=bound)
    urls = dict(urls)
    argon2 = gatehouse_argon2()
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        servers: dict[str, Server] = {}
        starters: dict[str, Callable[[Path], Server]] = {
            CEILING: lambda d: start_ceiling(d, workers),
            PEER: lambda d: start_peer(d, urls[PEER], argon2, workers),
            GATEHOUSE: lambda d: start_gatehouse(
                d, mail_url, urls[GATEHOUSE], workers, extra_env=gatehouse_env or RAISED_LIMITS
            ),
        }
        for target, start in starters.items():
            own = workdir / target  # its own directory: its log and, on SQLite, its database
            own.mkdir()
            if target in urls:
                urls[target] = urls[target].replace("{dir}", str(own))
            servers[target] = start(own)
            stack.callback(servers[target].stop)
            say(f"{label}: {target} listening on 127.0.0.1:{servers[target].port}")
        emails = {t: register_accounts(servers[t].port, ACCOUNTS) for t in (PEER, GATEHOUSE)}
        run_id = secrets.token_hex(4)
        for round_number in range(1, plan.rounds + 1):
            # A fresh access token each round: a slow host must not outlast ACCESS_TOKEN_TTL.
            tokens = {t: login(servers[t].port, emails[t][0])["access_token"] for t in emails}
            for scenario, _, who in SCENARIOS:
                for target in who:
                    port = servers[target].port
                    if scenario in SLOW:
                        result = load.closed_loop(
                            port,
                            slow_request(scenario, f"{run_id}{round_number}"),
                            SLOW_CONNECTIONS,
                            plan.warmup_seconds,
                            plan.slow_seconds,
                            ok_status=201 if scenario == "register" else 200,
                        )
                    else:
                        env = {"BENCH_TOKEN": tokens.get(target, "")}
                        if scenario == "refresh":
                            env["BENCH_REFRESH_TOKENS"] = refresh_tokens(port, emails[target])
                        result = load.run(port, scenario, plan.fast_seconds, CONNECTIONS, env)
                    results.add(target, scenario, result)
                    say(
                        f"{label} round {round_number}/{plan.rounds}: {target} {scenario} "
                        f"{result.rate:,.1f} req/s, p50 {result.p50_ms:.1f} ms, "
                        f"p99 {result.p99_ms:.1f} ms, {result.errors} failed"
                    )
            for target in (PEER, GATEHOUSE):
                # bench_auth's measure: /health/live probed idle, then during 20 logins.
                m = bench_auth.measure(
                    servers[target].port, emails[target], plan.idle_seconds, plan.load_seconds
                )
                results.stall.setdefault(target, []).append(StallRound(m.stall, m.rate))
                say(
                    f"{label} round {round_number}/{plan.rounds}: {target} stall ratio "
                    f"{m.stall:.1f}, {m.rate:.1f} logins/s during the burst"
                )
    return results


def host_line(load_before: tuple[float, float, float]) -> str:
    with open("/proc/cpuinfo") if Path("/proc/cpuinfo").exists() else open(os.devnull) as info:
        models = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    versions = ", ".join(
        f"{name} {version(name)}"
        for name in ("fastapi", "starlette", "fastapi-users", "uvicorn", "sqlalchemy", "pydantic")
    )
    return (
        f"{bench_auth.usable_cores()} cores ({models[0] if models else platform.machine()}), "
        f"load average {'/'.join(f'{x:.2f}' for x in load_before)} (1/5/15 min) before the run, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"{versions}, {load.wrk_version()}, Gatehouse commit {commit or 'unknown'}"
    )


def busy_note(load_before: float, load_after: float) -> str:
    """A run on a busy host still compares the servers (they take turns), but every absolute
    number is low, and the logins most: the hash pool runs at low priority on purpose.
    Only the load before the run decides: the one after includes the run's own servers and
    wrk, which keep every core busy for minutes (a quiet host reads ~4 after a run here)."""
    cores = bench_auth.usable_cores()
    if load_before <= cores / 2:
        return (
            f"The host was quiet before the run (load average {load_before:.1f} on {cores} "
            f"cores; {load_after:.1f} after, the run's own load included)."
        )
    return (
        f"⚠ **The host was busy** (load average {load_before:.1f} before the run, on {cores} "
        "cores): every number is lower than on a quiet host, the hash-bound rows (login, "
        "register, logins ÷ limit) most, since Gatehouse's hash pool yields to other processes "
        "on purpose. The ratios still compare servers measured in turns in the same minutes; "
        "re-run on a quiet host for numbers to quote."
    )


def page_section(
    plan: Plan,
    host: str,
    bound: float,
    verify_cpu: float,
    argon2: str,
    sqlite: Results,
    postgres: Results | None,
    postgres_note: str,
    minutes: float,
    load_before: float,
    load_after: float,
) -> str:
    m, t, p = argon2.split(",")
    client_cpu = max(
        (
            r.client_cpu or 0.0
            for results in (sqlite, postgres)
            if results is not None
            for rounds in results.rounds.values()
            for r in rounds
        ),
        default=0.0,
    )
    parts = [
        "## Gatehouse against stock fastapi-users (`make bench`)",
        f"Last run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {minutes:.1f} min. "
        f"Host: {host}; load average {load_after:.2f} after.",
        busy_note(load_before, load_after),
        "Each cell: **requests per second** (p50 / p99 latency in ms), the median of "
        f"{plan.rounds} rounds; ratios are of req/s (÷ ceiling: of the ceiling's "
        "`/health/live`). ⚠ marks requests that failed (non-2xx, socket error or timeout).",
        "### SQLite, one uvicorn worker each",
        table(sqlite),
        "Targets, on this run:",
        targets_list(sqlite),
        "### PostgreSQL, two uvicorn workers each",
        f"{postgres_note}\n\n{table(postgres)}" if postgres is not None else postgres_note,
        "### What runs",
        "\n".join(
            [
                "- **ceiling**: a bare FastAPI app, one `async` endpoint returning "
                '`{"status": "ok"}` (scripts/bench/ceiling_app.py);',
                "- **peer**: stock fastapi-users 15 set up as its documentation shows: JWT "
                "strategy, bearer transport, SQLAlchemy adapter, `current_user(active=True)` "
                "behind `GET /users/me`, plus the same trivial `/health/live` "
                "(scripts/bench/peer_app.py). Its `PasswordHelper` uses Gatehouse's argon2id "
                f"parameters, read from a hash Gatehouse makes (m={m} KiB, t={t}, p={p}); it "
                "hashes on the event loop, as fastapi-users does. It has no refresh token;",
                "- **Gatehouse** as a user runs it in production: `python -m app migrate`, then "
                "`python -m app serve` with ENVIRONMENT=production, a random 48-byte SECRET_KEY, "
                "PUBLIC_URL set, mail to a local SMTP sink, default LOG_LEVEL (an access line "
                "per request), the password strength check (zxcvbn) on at register;",
                "- **two settings differ from the defaults**: REGISTRATIONS_PER_ADDRESS and "
                "LOGINS_PER_ADDRESS are raised to 1,000,000, because every benchmark request "
                "comes from one address and the peer has no such limits: the login and "
                "register rows measure the same work on both sides, not a 429;",
                "- each server on its own free port on 127.0.0.1 with a fresh database "
                "(SQLite: a file in a temporary directory; PostgreSQL: its own throwaway "
                "database on 127.0.0.1:5432, dropped after; Gatehouse's workers there share "
                "Redis, as in production); ceiling and peer run by `uvicorn` with its defaults "
                "(access log on; with two workers also Gatehouse's TCP_NODELAY protocol, "
                "`--http app.http_protocol:NoDelayHTTPProtocol`: stock uvicorn's workers leave "
                "Nagle on and every server would sit at one request per ~44 ms per connection). "
                "All three run at once and take turns.",
            ]
        ),
        "### How it is measured",
        "\n".join(
            [
                f"- `/health/live`, `/users/me`, refresh: wrk (a separate C process), "
                f"{CONNECTIONS} connections, {plan.fast_seconds:.0f} s per round;",
                f"- login, register (argon2-bound: a few per second): {SLOW_CONNECTIONS} "
                "connections of a Python load generator (scripts/bench/load.py `closed_loop`, "
                "threads with keep-alive connections), counting what completes in a "
                f"{plan.slow_seconds:.0f} s window that opens once every connection has had an "
                f"answer (and after {plan.warmup_seconds:.1f} s at least); it used at most "
                f"{client_cpu:.1%} of one core: not the bottleneck;",
                "- `/users/me`: one access token for every connection; refresh: one login "
                "session per connection, each answer's new refresh token sent next "
                "(rotation); login: one account per connection (no per-account limit "
                "decides); register: a new address per request;",
                "- stall ratio and logins/s: `measure` of scripts/bench_auth.py "
                "(`make bench-auth`) on Gatehouse and on the peer: `/health/live` probed one "
                f"request at a time, {plan.idle_seconds:.0f} s idle then "
                f"{plan.load_seconds:.0f} s during {bench_auth.CONCURRENT_LOGINS} concurrent "
                "logins; the hash-bound limit is cores ÷ CPU seconds of one verify "
                f"({bound:.1f}/s = {bench_auth.usable_cores()} ÷ {verify_cpu * 1000:.0f} ms);",
                "- wrk shares the machine with the servers: on a 2-core host every number is "
                "lower than on a dedicated one, for all three alike. Compare ratios within "
                "one run, not numbers across runs or hosts.",
            ]
        ),
    ]
    return "\n\n".join(parts)


def stop_on_sigterm() -> None:
    def handler(signum: int, _: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # unwinds: every server started is stopped

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def main() -> int:
    if load.wrk_path() is None:
        print(load.INSTALL_HINT, file=sys.stderr)
        return 2
    stop_on_sigterm()
    plan = Plan.from_environ()
    started = time.monotonic()
    load_before = os.getloadavg()
    host = host_line(load_before)
    say(host)
    verify_cpu = bench_auth.cpu_seconds_per_verify()
    bound = bench_auth.usable_cores() / verify_cpu
    argon2 = gatehouse_argon2()
    postgres: Results | None = None
    postgres_note = "Not measured (BENCH_POSTGRES=0)."
    with MailSink() as mail:
        sqlite_url = "sqlite+aiosqlite:///{dir}/bench.db"
        sqlite = measure_database(
            "SQLite",
            plan,
            1,
            {PEER: sqlite_url, GATEHOUSE: sqlite_url},
            mail.url,
            bound,
        )
        if os.environ.get("BENCH_POSTGRES", "1") != "0":
            base = os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES)
            prefix = f"gatehouse_bench_{secrets.token_hex(4)}"
            if postgres_reachable(base):
                # The production profile: several workers share Redis (limits, the auth cache).
                redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
                with_redis = redis_reachable(redis_url)
                redis_line = (
                    f"Gatehouse's two workers share Redis ({redis_url}): the production profile."
                    if with_redis
                    else f"No Redis answered at {redis_url}: Gatehouse ran without, so its "
                    "auth cache was off (several workers without Redis cannot share revocations)."
                )
                say(redis_line)
                env = {**RAISED_LIMITS, **({"REDIS_URL": redis_url} if with_redis else {})}
                databases = postgres_databases(base, [f"{prefix}_peer", f"{prefix}_gatehouse"])
                with databases as (peer_url, gatehouse_url):
                    postgres = measure_database(
                        "PostgreSQL",
                        plan,
                        2,
                        {PEER: peer_url, GATEHOUSE: gatehouse_url},
                        mail.url,
                        bound,
                        env,
                    )
                postgres_note = redis_line
            else:
                postgres_note = f"Not measured: no PostgreSQL server answered at {base}."
                say(postgres_note)
    section = page_section(
        plan,
        host,
        bound,
        verify_cpu,
        argon2,
        sqlite,
        postgres,
        postgres_note,
        (time.monotonic() - started) / 60,
        load_before[0],
        os.getloadavg()[0],
    )
    if plan.quick:
        print(section)
        say("BENCH_QUICK=1: a smoke run; docs/benchmarks.md left alone")
        return 0
    OUTPUT.write_text(
        rewrite_page(OUTPUT.read_text() if OUTPUT.exists() else None, SECTION, section)
    )
    say(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
