"""What one worst-case password-strength check costs, and what two clients posting such
passwords to /auth/register do to other users' logins.

    .venv/bin/python scripts/bench_password_check.py [--logins 20] [--whole]

1. In this process: the time of the strength check on the costliest inputs found
   (scripts/zxcvbn_worst.py), as the app runs it (bounded) and as zxcvbn alone runs it on the
   first 64 characters (the old code); --whole adds zxcvbn on all 128 characters (~10 s each).
2. The real server (`python -m app serve`, ENVIRONMENT=production, fresh SQLite, free port):
   login latency one login at a time, first with nothing else running, then while two
   clients post worst-case passwords to /auth/register without pause, in the same run.
The host's load average is printed before and after: other work on the machine skews every
number; compare the columns of one run, and re-run when the load moved.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from zxcvbn import zxcvbn  # noqa: E402

from scripts.bench.report import percentile  # noqa: E402
from scripts.bench.servers import MailSink, request  # noqa: E402
from scripts.bench_auth import start_server  # noqa: E402

WORST_INPUTS = [
    "!$%(+0123456789<@[{|8@sket8@l7!$%(+0123456789<@[{|8@sket8@l7t$%1+002@456789<@o3$8@sktt8kq7"
    "!r%w10123+t678h<@[{54@t+tr8@l7p$oo@h12",
    ("1|7(<{[%2@4$5+0!3869" + "p4$$w0rd7r0ub4d0r" * 8)[:128],
    ("4@8({[<369!1|70$5+7%2" * 7)[:64],
]
PASSWORD = "bench passphrase that is long enough"  # noqa: S105 - a throwaway test account
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def best_of(runs: int, function: object, *args: object, **kwargs: object) -> float:
    assert callable(function)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        function(*args, **kwargs)
        samples.append(time.perf_counter() - start)
    return min(samples)


def check_costs(whole: bool) -> None:
    from modules.users import strength

    strength.bounded_zxcvbn("warm-up", [])
    print(
        "| input (length) | bounded, as the app runs it | zxcvbn, first 64 (old code) |"
        + (" zxcvbn, whole |" if whole else "")
    )
    print("|---|---|---|" + ("---|" if whole else ""))
    for password in WORST_INPUTS:
        bounded = best_of(5, strength.bounded_zxcvbn, password, [])
        strength._install_l33t_cap(10**9)  # every substitution table, as zxcvbn does
        try:
            old = best_of(2, zxcvbn, password[:64])
            full = best_of(1, zxcvbn, password, max_length=len(password)) if whole else 0.0
        finally:
            strength._install_l33t_cap(strength.MAX_L33T_TABLES)
        row = f"| `{password[:24]}…` ({len(password)}) | {bounded * 1000:.0f} ms | {old:.2f} s |"
        print(row + (f" {full:.1f} s |" if whole else ""), flush=True)


def login_latencies(port: int, email: str, count: int) -> list[float]:
    form = urlencode({"username": email, "password": PASSWORD}).encode()
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        status, body = request(port, "POST", "/auth/jwt/login", form, FORM)
        samples.append(time.perf_counter() - start)
        if status != 200:
            raise RuntimeError(f"login answered {status}: {body[:200]!r}")
    return samples


def attacker(port: int, name: str, stop: threading.Event, answers: Counter[int]) -> None:
    for n in itertools.count():
        if stop.is_set():
            return
        password = WORST_INPUTS[n % 2]
        body = f'{{"email": "{name}{n}@example.com", "password": "{password}"}}'.encode()
        status, _ = request(port, "POST", "/auth/register", body, JSON)
        answers[status] += 1


def summary(samples: list[float]) -> str:
    return (
        f"p50 {statistics.median(samples) * 1000:.0f} ms, p90 "
        f"{percentile(samples, 90) * 1000:.0f} ms, max {max(samples) * 1000:.0f} ms"
    )


def logins_under_attack(count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-pw-") as tmp, MailSink() as mail:
        server = start_server(Path(tmp), f"smtp://127.0.0.1:{mail.port}")
        try:
            email = "reader@example.com"
            body = f'{{"email": "{email}", "password": "{PASSWORD}"}}'.encode()
            status, answer = request(server.port, "POST", "/auth/register", body, JSON)
            if status != 201:
                raise RuntimeError(f"register answered {status}: {answer[:200]!r}")
            login_latencies(server.port, email, 3)  # warm up
            idle = login_latencies(server.port, email, count)
            stop = threading.Event()
            answers: Counter[int] = Counter()
            clients = [
                threading.Thread(target=attacker, args=(server.port, f"x{c}-", stop, answers))
                for c in range(2)
            ]
            for client in clients:
                client.start()
            time.sleep(1.0)  # both clients' checks are in flight
            try:
                loaded = login_latencies(server.port, email, count)
            finally:
                stop.set()
                for client in clients:
                    client.join()
        finally:
            server.stop()
    print(f"| logins, nothing else running | {summary(idle)} |")
    print(f"| logins, 2 clients posting worst-case passwords | {summary(loaded)} |")
    ratio = statistics.median(loaded) / statistics.median(idle)
    print(f"| p50 under the two clients / idle p50 | {ratio:.1f}x |")
    print(f"| the clients' /auth/register answers | {dict(answers)} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--whole", action="store_true", help="also zxcvbn on all 128 characters")
    parser.add_argument("--skip-server", action="store_true")
    # For a before/after: check out the old passwords.py and runtime.py, then run the second
    # part alone (the first needs strength.py).
    parser.add_argument("--skip-costs", action="store_true")
    args = parser.parse_args()
    print(f"host load average before: {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores\n")
    if not args.skip_costs:
        check_costs(args.whole)
        print()
    if not args.skip_server:
        print("| measure | login latency |\n|---|---|")
        logins_under_attack(args.logins)
    print(f"\nhost load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
