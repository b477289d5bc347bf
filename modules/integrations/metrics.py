"""The integrations module's metrics: circuits and the calls behind them (app/metrics.py)."""

from __future__ import annotations

from app.metrics import counter, gauge, histogram

# 0 closed, 1 half open, 2 open: in one view across workers, the worst any worker sees.
STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}

CIRCUIT_STATE = gauge(
    "circuit_state",
    "State of each circuit as this process sees it: 0 closed, 1 half open, 2 open (the "
    "highest across workers).",
    ("circuit",),
    mode="livemax",
)
CIRCUIT_CHANGES = counter(
    "circuit_state_changes_total",
    "Circuit state changes, by circuit and the state entered.",
    ("circuit", "state"),
)
CALL_DURATION = histogram(
    "outbound_call_duration_seconds",
    "Outbound calls behind a circuit, by circuit and outcome: ok, refused (the upstream "
    "answered no: a 4xx), failed (counted against the circuit), rejected (the circuit was "
    "open: no call made), cancelled.",
    ("circuit", "outcome"),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
