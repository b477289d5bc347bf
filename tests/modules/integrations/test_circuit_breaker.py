"""The circuit around a real HTTP upstream on 127.0.0.1: closed -> open -> half-open -> closed."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator

import pytest

from modules.integrations import CircuitOpenError, UpstreamError, UpstreamTimeoutError
from modules.integrations.breakers import Breakers
from modules.integrations.http import UpstreamClient
from tests.conftest import LogCapture
from tests.modules.integrations.conftest import THRESHOLD, TTL
from tests.upstreams import FakeHttpUpstream, closed_port_url

NAME = "test-upstream"


@pytest.fixture
async def http(breakers: Breakers, upstream: FakeHttpUpstream) -> AsyncIterator[UpstreamClient]:
    client = UpstreamClient(breakers.circuit(NAME), upstream.url, timeout=0.25)
    yield client
    await client.aclose()


async def open_circuit(http: UpstreamClient, upstream: FakeHttpUpstream) -> None:
    upstream.answer(500, "boom")
    for _ in range(THRESHOLD):
        with pytest.raises(UpstreamError) as caught:
            await http.get("/thing")
        assert caught.value.status_code == 500
    assert (await http.circuit.state()).state == "open"


async def wait_for_trial() -> None:
    await asyncio.sleep(TTL + 0.05)


async def test_opens_after_threshold_then_fails_fast_sending_nothing(
    http: UpstreamClient, upstream: FakeHttpUpstream
) -> None:
    upstream.answer(500, "boom")
    for failures in range(1, THRESHOLD):
        with pytest.raises(UpstreamError):
            await http.get("/thing")
        state = await http.circuit.state()
        assert (state.state, state.failures) == ("closed", failures)
    with pytest.raises(UpstreamError):
        await http.get("/thing")
    state = await http.circuit.state()
    assert state.state == "open" and state.opened_at is not None
    assert state.failures == THRESHOLD
    assert len(upstream.requests) == THRESHOLD

    upstream.answer(200, "fine")  # the upstream is well again, but the circuit is open
    durations = []
    for _ in range(9):
        started = time.perf_counter()
        with pytest.raises(CircuitOpenError) as caught:
            await http.get("/thing")
        durations.append(time.perf_counter() - started)
        assert caught.value.circuit == NAME and 0 < caught.value.retry_after <= TTL
    assert statistics.median(durations) < 0.010
    assert len(upstream.requests) == THRESHOLD  # nothing reached the upstream


async def test_after_ttl_one_trial_passes_and_its_success_closes(
    http: UpstreamClient, upstream: FakeHttpUpstream
) -> None:
    await open_circuit(http, upstream)
    await wait_for_trial()
    upstream.answer(200, "slow but fine", delay=0.2)
    sent_before = len(upstream.requests)

    async def timed_call() -> tuple[object, float]:
        started = time.perf_counter()
        try:
            result: object = await http.get("/thing")
        except CircuitOpenError as exc:
            result = exc
        return result, time.perf_counter() - started

    outcomes = await asyncio.gather(*(timed_call() for _ in range(5)))
    passed = [result for result, _ in outcomes if not isinstance(result, CircuitOpenError)]
    refused = [took for result, took in outcomes if isinstance(result, CircuitOpenError)]
    assert len(passed) == 1 and len(refused) == 4
    assert passed[0].text == "slow but fine"  # type: ignore[attr-defined]
    # The others failed fast: long before the trial's slow answer came back.
    assert max(refused) < 0.1
    assert len(upstream.requests) == sent_before + 1
    state = await http.circuit.state()
    assert (state.state, state.failures) == ("closed", 0)
    assert (await http.get("/thing")).status_code == 200  # and calls flow again


async def test_a_failed_trial_reopens_the_circuit(
    http: UpstreamClient, upstream: FakeHttpUpstream
) -> None:
    await open_circuit(http, upstream)
    first_opened_at = (await http.circuit.state()).opened_at
    await wait_for_trial()
    with pytest.raises(UpstreamError):
        await http.get("/thing")  # the trial, still 500
    state = await http.circuit.state()
    assert state.state == "open" and state.opened_at != first_opened_at
    assert state.failures == THRESHOLD + 1
    sent = len(upstream.requests)
    with pytest.raises(CircuitOpenError):
        await http.get("/thing")
    assert len(upstream.requests) == sent


async def test_4xx_answers_never_open_the_circuit(
    http: UpstreamClient, upstream: FakeHttpUpstream
) -> None:
    upstream.answer(404, "no such thing")
    for _ in range(THRESHOLD * 2):
        response = await http.get("/missing")
        assert response.status_code == 404 and response.text == "no such thing"
    state = await http.circuit.state()
    assert (state.state, state.failures) == ("closed", 0)
    assert len(upstream.requests) == THRESHOLD * 2


async def test_a_4xx_resets_the_consecutive_failure_count(
    http: UpstreamClient, upstream: FakeHttpUpstream
) -> None:
    upstream.answer(503)
    for _ in range(THRESHOLD - 1):
        with pytest.raises(UpstreamError):
            await http.get("/thing")
    upstream.answer(400)
    assert (await http.get("/thing")).status_code == 400
    assert (await http.circuit.state()).failures == 0


async def test_a_hanging_upstream_is_a_failure_at_the_timeout(
    http: UpstreamClient, upstream: FakeHttpUpstream
) -> None:
    upstream.hang()
    started = time.perf_counter()
    with pytest.raises(UpstreamTimeoutError):
        await http.get("/thing")
    took = time.perf_counter() - started
    assert 0.2 <= took < 2.0  # the 0.25 s read timeout, not the server, ended it
    assert (await http.circuit.state()).failures == 1
    for _ in range(THRESHOLD - 1):
        with pytest.raises(UpstreamTimeoutError):
            await http.get("/thing")
    assert (await http.circuit.state()).state == "open"


async def test_connection_refused_is_a_failure(breakers: Breakers) -> None:
    client = UpstreamClient(breakers.circuit("nowhere"), closed_port_url(), timeout=0.5)
    try:
        for _ in range(THRESHOLD):
            with pytest.raises(UpstreamError) as caught:
                await client.get("/")
            assert "ConnectError" in str(caught.value)
        with pytest.raises(CircuitOpenError):
            await client.get("/")
    finally:
        await client.aclose()


async def test_every_state_change_and_failure_is_logged_with_the_circuit_name(
    http: UpstreamClient, upstream: FakeHttpUpstream, logs: LogCapture
) -> None:
    await open_circuit(http, upstream)
    await wait_for_trial()
    upstream.answer(200)
    await http.get("/thing")

    changes = [
        (r["previous_state"], r["state"])
        for r in logs.find(lambda r: r.get("circuit") == NAME and "state" in r)
    ]
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    failures = logs.find(lambda r: r.get("circuit") == NAME and "failures" in r)
    assert [r["failures"] for r in failures] == list(range(1, THRESHOLD + 1))
    assert all(NAME in r["message"] for r in failures)
    opened = logs.find(lambda r: r.get("state") == "open")[0]
    assert opened["level"] == "WARNING"
    assert opened["message"] == f"circuit {NAME} changed state: closed -> open"
