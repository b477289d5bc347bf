"""`python -m scripts.bench.profile [health|me] [seconds]`: where one request's time goes.

Starts Gatehouse as `make bench` does (production settings, SQLite, one worker), drives one
path with one wrk connection, and records the server with py-spy (not in the lock: install it
into .venv with `.venv/bin/uv pip install --python .venv/bin/python py-spy`). Prints py-spy's
top functions (by own time and by total time) and leaves the folded stacks in the temp dir.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from scripts.bench.__main__ import RAISED_LIMITS, login, register_accounts
from scripts.bench.load import LUA
from scripts.bench.servers import MailSink, start_gatehouse


def main() -> int:
    scenario = sys.argv[1] if len(sys.argv) > 1 else "me"
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("needs py-spy: .venv/bin/uv pip install --python .venv/bin/python py-spy")
        return 2
    lua_name = {"me": "me", "health": "health"}[scenario]
    with tempfile.TemporaryDirectory(prefix="gatehouse-profile-") as tmp, MailSink() as mail:
        workdir = Path(tmp)
        url = f"sqlite+aiosqlite:///{workdir}/profile.db"
        server = start_gatehouse(workdir, mail.url, url, 1, extra_env=RAISED_LIMITS)
        try:
            email = register_accounts(server.port, 1)[0]
            token = login(server.port, email)["access_token"]
            script = (LUA / "common.lua").read_text() + "\n" + (LUA / f"{lua_name}.lua").read_text()
            lua = workdir / "run.lua"
            lua.write_text(script)
            env = {**os.environ, "BENCH_TOKEN": token}
            wrk = ["wrk", "-t1", "-c1", f"-d{seconds + 2}s", "-s", str(lua)]
            wrk.append(f"http://127.0.0.1:{server.port}")
            load = subprocess.Popen(wrk, env=env, stdout=subprocess.PIPE, text=True)
            out = Path(tempfile.gettempdir()) / f"gatehouse-profile-{scenario}.txt"
            record = [spy, "record", "-p", str(server.process.pid), "-d", str(seconds)]
            record += ["-r", "250", "-f", "raw", "-o", str(out), "--nonblocking"]
            subprocess.run(record, check=True, capture_output=True)
            print(load.communicate()[0])
            print(f"folded stacks: {out}")
            folded = out.read_text().splitlines()
            summarize(folded)
        finally:
            server.stop()
    return 0


def summarize(folded: list[str]) -> None:
    """Own and total share per function, from py-spy's folded stacks."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in folded:
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + count
    print(f"{samples} samples")
    print("own time:")
    for frame, count in sorted(own.items(), key=lambda item: -item[1])[:25]:
        print(f"  {100 * count / samples:5.1f}%  {frame}")
    print("total time:")
    for frame, count in sorted(total.items(), key=lambda item: -item[1])[:60]:
        print(f"  {100 * count / samples:5.1f}%  {frame}")


if __name__ == "__main__":
    raise SystemExit(main())
