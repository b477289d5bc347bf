"""Start and stop the servers a benchmark measures, each on its own free loopback port.

Every server runs in its own session (process group): Ctrl-C in the terminal reaches only the
harness, which then stops each server it started (`Server.stop`, via an ExitStack).
"""

from __future__ import annotations

import http.client
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
READY_TIMEOUT_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class MailSink:
    """A local SMTP server that accepts and drops mail: production refuses console://."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.handlers import Sink

        self.port = free_port()
        self.url = f"smtp://127.0.0.1:{self.port}"
        self.controller = Controller(Sink(), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> MailSink:
        self.controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.controller.stop()


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def stop(self) -> None:
        """SIGTERM to the server's own process group (uvicorn's workers too), then SIGKILL."""
        if self.process.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    connection: http.client.HTTPConnection | None = None,
) -> tuple[int, bytes]:
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        if connection is None:
            conn.close()


def _clean_environ() -> dict[str, str]:
    # The developer's own settings stay out; the breach check stays off (no network).
    dropped = {"REDIS_URL", "MODULES", "PWNED_PASSWORDS_URL", "DATABASE_URL", "LOG_LEVEL"}
    return {k: v for k, v in os.environ.items() if k not in dropped}


def launch(name: str, argv: list[str], env: dict[str, str], workdir: Path, port: int) -> Server:
    """Start `argv` (cwd: the repository) and wait until its /health/live answers 200."""
    log = workdir / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: see Server.stop
        )
    server = Server(name, process, port, log)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text()[-2000:]}")
        with suppress(OSError):
            status, _ = request(port, "GET", "/health/live")
            if status == 200:
                return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{name} did not become ready in {READY_TIMEOUT_SECONDS:.0f} s")


def uvicorn_argv(target: str, port: int, workers: int) -> list[str]:
    """uvicorn with its defaults (access log on), as anyone runs a stock app. With several
    workers, the HTTP protocol `python -m app serve` runs too (TCP_NODELAY on each connection,
    app/http_protocol.py): stock uvicorn's `--workers` leaves Nagle on and caps every server at
    one request per ~44 ms per connection, which would measure the socket, not the servers."""
    argv = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port)]
    if workers == 1:
        return argv
    return [*argv, "--workers", str(workers), "--http", "app.http_protocol:NoDelayHTTPProtocol"]


def start_ceiling(workdir: Path, workers: int = 1) -> Server:
    port = free_port()
    argv = uvicorn_argv("scripts.bench.ceiling_app:app", port, workers)
    return launch("ceiling", argv, _clean_environ(), workdir, port)


def start_peer(workdir: Path, database_url: str, argon2: str, workers: int = 1) -> Server:
    port = free_port()
    env = {
        **_clean_environ(),
        "BENCH_DATABASE_URL": database_url,
        "BENCH_SECRET": secrets.token_urlsafe(48),
        "BENCH_ARGON2": argon2,
    }
    create = [sys.executable, "-m", "scripts.bench.peer_app", "create-tables"]
    subprocess.run(create, cwd=ROOT, env=env, check=True)
    argv = uvicorn_argv("scripts.bench.peer_app:app", port, workers)
    return launch("peer", argv, env, workdir, port)


def gatehouse_env(
    workdir: Path, port: int, mail_url: str, database_url: str, extra: dict[str, str]
) -> dict[str, str]:
    """Production settings, as a user runs Gatehouse: a strong key, a public PUBLIC_URL, SMTP."""
    return {
        **_clean_environ(),
        "ENVIRONMENT": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": database_url,
        "DATA_DIR": str(workdir / "data"),
        "MAIL_URL": mail_url,
        # Production refuses a loopback PUBLIC_URL (mailed links would point at the reader's
        # own machine); the benchmark never follows a mailed link.
        "PUBLIC_URL": "https://gatehouse.bench.example",
        **extra,
    }


def _serve_has_workers() -> bool:
    answer = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return "--workers" in answer.stdout


# Several workers before `python -m app serve --workers` exists: what serve does, with workers.
SERVE_WITH_WORKERS = """
import sys, uvicorn
uvicorn.run("app.main:app", host="127.0.0.1", port=int(sys.argv[1]), workers=int(sys.argv[2]),
            log_config=None, proxy_headers=False)
"""


def start_gatehouse(
    workdir: Path,
    mail_url: str,
    database_url: str,
    workers: int = 1,
    extra_env: dict[str, str] | None = None,
    entry: list[str] | None = None,
    name: str = "gatehouse",
) -> Server:
    """Migrate (`python -m app migrate`), then `python -m app serve --no-migrate`.

    `entry` replaces `-m app` (bench_auth runs a patched copy that hashes on the event loop).
    """
    port = free_port()
    env = gatehouse_env(workdir, port, mail_url, database_url, extra_env or {})
    python = sys.executable
    subprocess.run([python, "-m", "app", "migrate"], cwd=ROOT, env=env, check=True)
    serve = ["serve", "--no-migrate", "--host", "127.0.0.1", "--port", str(port)]
    if workers == 1:
        argv = [python, *(entry or ["-m", "app"]), *serve]
    elif _serve_has_workers():
        argv = [python, "-m", "app", *serve, "--workers", str(workers)]
    else:
        argv = [python, "-c", SERVE_WITH_WORKERS, str(port), str(workers)]
    return launch(name, argv, env, workdir, port)
