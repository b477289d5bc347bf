"""A request body that never arrives cannot hold a connection: real uvicorn, real TCP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import pytest
import uvicorn

from app.factory import create_app
from app.settings import CoreSettings
from tests.helpers import free_port

TIMEOUT = 1.0
# Far more than TIMEOUT, far less than the > 25 s the connection was held before.
PATIENCE = 30.0  # a register hashes (argon2, zxcvbn): slow on a loaded host


@pytest.fixture
async def server(settings: CoreSettings) -> AsyncIterator[int]:
    """The app under uvicorn on a free loopback port, in this event loop."""
    app = create_app(settings.model_copy(update={"body_read_timeout": TIMEOUT}))
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, lifespan="on", proxy_headers=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.05)
    yield port
    server.should_exit = True
    await asyncio.wait_for(task, 15)


def _head(length: int) -> bytes:
    return (
        "POST /auth/register HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


async def _answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response, then what follows it until the server closes."""
    raw = await asyncio.wait_for(reader.read(65536), PATIENCE)
    while b"\r\n\r\n" not in raw:
        more = await asyncio.wait_for(reader.read(65536), PATIENCE)
        assert more, f"closed before a full response: {raw!r}"
        raw += more
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers["content-length"])
    while len(rest) < length:
        more = await asyncio.wait_for(reader.read(65536), PATIENCE)
        assert more, "closed before the whole body"
        rest += more
    return status, headers, rest[:length]


async def _assert_408_then_closed(reader: asyncio.StreamReader, started: float) -> None:
    status, headers, body = await _answer(reader)
    elapsed = time.monotonic() - started
    assert status == 408, body
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["code"] == "REQUEST_TIMEOUT" and problem["status"] == 408
    assert headers["x-content-type-options"] == "nosniff"
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + 3, elapsed
    # The connection is closed: nothing more is read from a half-sent request.
    # (Closed with the client's unread bytes still in flight, the kernel resets: a close too.)
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(reader.read(), PATIENCE) == b""


async def test_a_body_that_never_arrives_gets_408_and_the_connection_closes(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    started = time.monotonic()
    writer.write(_head(50) + b'{"email":"')  # 10 of the 50 announced bytes, then silence
    await writer.drain()
    await _assert_408_then_closed(reader, started)
    writer.close()


async def test_a_trickled_body_cannot_reset_the_clock(server: int) -> None:
    """The deadline is for the whole body, not for each read: a byte every 0.25 s keeps no
    per-read timer from firing, and still gets 408."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    started = time.monotonic()
    writer.write(_head(50))
    await writer.drain()

    async def trickle() -> None:
        for _ in range(40):
            await asyncio.sleep(0.25)
            if writer.is_closing():
                return
            try:
                writer.write(b" ")
                await writer.drain()
            except ConnectionError:
                return

    trickling = asyncio.create_task(trickle())
    try:
        await _assert_408_then_closed(reader, started)
    except ConnectionResetError:
        # The server closed while our trickled bytes were unread, so the kernel answered them
        # with a reset, which may overtake the 408 on its way to us: still given up in time.
        assert TIMEOUT * 0.9 <= time.monotonic() - started < TIMEOUT + 3
    finally:
        trickling.cancel()
        writer.close()


async def test_a_whole_body_is_served_as_before(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    body = json.dumps({"email": "slow@example.com", "password": "correct horse battery staple"})
    payload = body.encode()
    writer.write(_head(len(payload)) + payload[:10])
    await writer.drain()
    await asyncio.sleep(TIMEOUT / 3)  # slow, but within the deadline
    writer.write(payload[10:])
    await writer.drain()
    status, _, answer = await _answer(reader)
    assert status == 201, answer
    writer.close()
