"""The HTTP protocol `python -m app serve` runs: uvicorn's own (httptools when installed, h11
otherwise) with TCP_NODELAY set on every connection.

Why: with `--workers N` (and `--reload`) uvicorn binds the listening socket itself without
naming the protocol (`socket.socket(family)`: proto 0), and asyncio sets TCP_NODELAY only on
sockets whose proto is TCP. Nagle's algorithm then holds the second write of each response
(uvicorn writes the head and the body apart) until the client's delayed ACK, ~40 ms later:
on a keep-alive connection every request took 44 ms (measured: 367 req/s with 16 connections
against 8,282 with one worker, for a bare endpoint). One worker was spared only because uvicorn
lets asyncio create the socket there.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from uvicorn.protocols.http.auto import AutoHTTPProtocol


class NoDelayHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
