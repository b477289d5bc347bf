"""`make test` prints pytest's progress and summary, nothing between: the SMTP server the
tests start (aiosmtpd) used to log every session from its own thread, after pytest had
stopped capturing for the test that started it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROGRESS = re.compile(r"^[.sxXFE]+\s*(\[\s*\d+%\])?$")
SUMMARY = re.compile(r"^\d+ passed")


def test_a_run_with_smtp_sessions_prints_only_progress_and_summary() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/modules/integrations/test_mail_delivery.py::"
            "test_forgot_password_mail_carries_a_link_whose_token_resets",
            "tests/modules/users/test_email_change.py::test_the_change_notices_go_out_over_smtp",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    noise = [line for line in lines if not (PROGRESS.match(line) or SUMMARY.match(line))]
    assert not noise, noise
    assert result.stderr.strip() == "", result.stderr[-3000:]
