"""The app served by a real uvicorn on a free loopback port, in a thread of its own: clients
in the test's event loop then race each other over real sockets, as they would in production."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from tests.helpers import free_port


@contextmanager
def serve(app: FastAPI, port: int | None = None) -> Iterator[str]:
    """Run `app` (with its lifespan) until the block ends, on `port` (default: a free one);
    yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
