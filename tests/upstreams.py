"""Real upstreams on 127.0.0.1 for tests: a tiny HTTP/1.1 server, an SMTP server, a closed port.

The HTTP server is plain asyncio (`asyncio.start_server`): it can be told to answer a status
with a body, to be slow, or to hang; it counts what it receives, so a test can prove that an
open circuit sends nothing.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from fastapi import FastAPI


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Reply:
    status: int = 200
    body: str = ""
    delay: float = 0.0  # seconds before answering
    hang: bool = False  # never answer


@dataclass
class FakeHttpUpstream:
    """`reply` decides the next answers; `route`, when set, picks a reply per path."""

    reply: Reply = field(default_factory=Reply)
    route: Callable[[str], Reply] | None = None
    requests: list[ReceivedRequest] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _connections: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def answer(self, status: int, body: str = "", delay: float = 0.0) -> None:
        self.reply = Reply(status=status, body=body, delay=delay)

    def hang(self) -> None:
        self.reply = Reply(hang=True)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_connection, "127.0.0.1", 0)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                if length:
                    await reader.readexactly(length)
                self.requests.append(ReceivedRequest(method, path, headers))
                reply = self.route(path) if self.route is not None else self.reply
                if reply.hang:
                    await asyncio.Event().wait()
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                body = reply.body.encode()
                writer.write(
                    f"HTTP/1.1 {reply.status} X\r\nContent-Type: text/plain\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def closed_port_url(scheme: str = "http") -> str:
    """An address where nothing listens: connections are refused at once."""
    return f"{scheme}://127.0.0.1:{free_port()}"


class MailCatcher:
    """aiosmtpd handler: keeps every mail it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.arrived.set()
        return "250 Message accepted for delivery"


def start_smtp_server() -> tuple[Controller, MailCatcher]:
    catcher = MailCatcher()
    controller = Controller(catcher, hostname="127.0.0.1", port=free_port())
    controller.start()
    return controller, catcher


async def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait until `check()` holds (background work, e.g. a mail sent after the answer). The
    bound is generous: on a loaded 2-core CI host 5 s was not always enough."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


@asynccontextmanager
async def app_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Like the `client` fixture, for an app a test builds itself."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
