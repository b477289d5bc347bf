"""The users module's metrics (served by `/metrics`, see app/metrics.py)."""

from __future__ import annotations

from app.metrics import counter, gauge, histogram

LOGINS = counter(
    "logins_total",
    "Login attempts by outcome: ok, bad_credentials (unknown user, wrong password, inactive "
    "account alike), limited (refused by the brute-force limits before any password check).",
    ("outcome",),
)
LOGIN_OK = LOGINS.labels(outcome="ok")
LOGIN_BAD_CREDENTIALS = LOGINS.labels(outcome="bad_credentials")
LOGIN_LIMITED = LOGINS.labels(outcome="limited")

REFRESH_REUSE = counter(
    "refresh_token_reuse_total",
    "Rotated refresh tokens presented again (each ends its session: a theft signal).",
)
SESSIONS_REVOKED = counter(
    "sessions_revoked_total",
    "Login sessions ended before their absolute lifetime, by reason (logout, logout-all, "
    "reuse, session cap, password change...).",
    ("reason",),
)

HASH_QUEUE = gauge(
    "password_hash_queue_depth",
    "Password hashes and checks waiting for a thread of the hashing pool (all workers).",
    mode="livesum",
)
HASH_WAIT = histogram(
    "password_hash_wait_seconds",
    "Time a password hash or check waited for a thread of the hashing pool.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
