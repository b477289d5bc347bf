"""Circuits in /metrics: each circuit's state, its changes, and the calls behind it by outcome,
around a real HTTP upstream on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from modules.integrations import CircuitOpenError, UpstreamError, UpstreamRefusedError
from modules.integrations.breakers import Breakers
from modules.integrations.http import UpstreamClient
from tests.modules.integrations.conftest import THRESHOLD, TTL
from tests.upstreams import FakeHttpUpstream

NAME = "metrics-upstream"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def calls(outcome: str) -> float:
    return sample("gatehouse_outbound_call_duration_seconds_count", circuit=NAME, outcome=outcome)


def state() -> float:
    return sample("gatehouse_circuit_state", circuit=NAME)


async def test_circuit_state_changes_and_call_outcomes_are_measured(
    breakers: Breakers, upstream: FakeHttpUpstream
) -> None:
    http = UpstreamClient(breakers.circuit(NAME), upstream.url, timeout=0.25)
    base = {o: calls(o) for o in ("ok", "refused", "failed", "rejected")}
    opened = sample("gatehouse_circuit_state_changes_total", circuit=NAME, state="open")
    closed = sample("gatehouse_circuit_state_changes_total", circuit=NAME, state="closed")
    try:
        upstream.answer(404, "no such thing")  # the upstream answered: the call worked
        assert (await http.get("/thing")).status_code == 404
        assert calls("ok") - base["ok"] == 1

        async def refusal() -> None:  # a caller's "no" to this one request (an SMTP 5xx)
            raise UpstreamRefusedError(NAME, "recipient refused")

        with pytest.raises(UpstreamRefusedError):
            await http.circuit.call(refusal)
        assert calls("refused") - base["refused"] == 1
        assert state() == 0

        upstream.answer(500, "boom")
        for _ in range(THRESHOLD):
            with pytest.raises(UpstreamError):
                await http.get("/thing")
        assert calls("failed") - base["failed"] == THRESHOLD
        assert state() == 2  # open
        assert sample("gatehouse_circuit_state_changes_total", circuit=NAME, state="open") == (
            opened + 1
        )
        with pytest.raises(CircuitOpenError):
            await http.get("/thing")
        assert calls("rejected") - base["rejected"] == 1

        await asyncio.sleep(TTL + 0.05)
        upstream.answer(200, "fine")
        await http.get("/thing")  # the trial succeeds and closes the circuit
        assert calls("ok") - base["ok"] == 2
        assert state() == 0
        assert sample("gatehouse_circuit_state_changes_total", circuit=NAME, state="closed") == (
            closed + 1
        )
        assert (
            sample("gatehouse_outbound_call_duration_seconds_sum", circuit=NAME, outcome="ok") > 0
        )
    finally:
        await http.aclose()
