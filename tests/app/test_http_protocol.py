"""`python -m app serve` sets TCP_NODELAY on every connection (app/http_protocol.py).

With `--workers N` or `--reload`, uvicorn binds the listening socket itself with proto 0, and
asyncio sets TCP_NODELAY only on sockets whose proto is TCP: Nagle held the second write of
every response until the client's delayed ACK, and each keep-alive request took ~44 ms
(docs/benchmarks.md, the PostgreSQL table). The test binds the socket as uvicorn does for
workers (`Config.bind_socket`), accepts one real connection and reads the option on the
server's side of it; the control shows stock uvicorn leaves it off there."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol
from uvicorn.server import ServerState

from app.http_protocol import NoDelayHTTPProtocol
from tests.helpers import free_port

# Sockets and uvicorn's protocol only: no database.
pytestmark = pytest.mark.backend_neutral


async def _app(scope: Any, receive: Any, send: Any) -> None:  # never called: no request sent
    raise AssertionError


async def _nodelay_on_the_servers_side(protocol_class: type[asyncio.Protocol]) -> int:
    config = uvicorn.Config(_app, host="127.0.0.1", port=free_port(), lifespan="off")
    config.load()
    listening = config.bind_socket()  # as uvicorn's supervisor binds it for --workers
    assert listening.proto == 0  # what lets asyncio skip TCP_NODELAY
    made: list[Any] = []

    def factory() -> asyncio.Protocol:
        protocol = protocol_class(config=config, server_state=ServerState(), app_state={})  # type: ignore[call-arg]
        made.append(protocol)
        return protocol

    server = await asyncio.get_running_loop().create_server(factory, sock=listening)
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", config.port)
        try:
            async with asyncio.timeout(10):
                while not made or getattr(made[0], "transport", None) is None:
                    await asyncio.sleep(0.01)
            accepted = made[0].transport.get_extra_info("socket")
            return int(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        finally:
            writer.close()
            await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()


async def test_every_accepted_connection_has_tcp_nodelay() -> None:
    assert await _nodelay_on_the_servers_side(NoDelayHTTPProtocol) == 1


async def test_stock_uvicorn_leaves_nagle_on_for_its_workers_socket() -> None:
    """The control: if this starts failing, uvicorn sets the option itself and
    app/http_protocol.py can go."""
    assert await _nodelay_on_the_servers_side(AutoHTTPProtocol) == 0
