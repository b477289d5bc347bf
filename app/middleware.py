"""The outermost layer of every request: request id, access line, the request body (size limit,
read deadline, refused text), security headers (`app/security_headers.py`), last-resort 500.

Pure ASGI (not BaseHTTPMiddleware) so the request id set here is seen by every log line the
request writes, and so an unhandled exception still leaves with the request id on it.

The body is read here, whole, before any route runs (it is at most MAX_BODY_BYTES): one place
enforces the size limit whether or not a Content-Length was sent, the BODY_READ_TIMEOUT deadline
(a client that announces 50 bytes and sends 10 would otherwise hold the connection and a worker
slot for as long as it likes), and the text check of `app/request_text.py`. The route then reads
the same bytes from memory.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid

from loguru import logger
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.context import request_id_var, user_id_var
from app.errors import (
    internal_error_response,
    is_database_unavailable,
    is_schema_behind,
    log_database_error,
    problem_response,
)
from app.request_text import unacceptable_text
from app.security_headers import with_security_headers
from app.settings import CoreSettings

REQUEST_ID_HEADER = "X-Request-ID"
# A client's id is kept only when it is short and printable: it ends up in every log line.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# nginx's code for "the client went away before the answer": only ever in the access line.
CLIENT_CLOSED = 499


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


class _BodyTooLarge(Exception):
    pass


class _BodyTimeout(Exception):
    pass


class _ClientGone(Exception):
    pass


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, settings: CoreSettings) -> None:
        self.app = app
        self.max_body_bytes = settings.max_body_bytes
        self.body_read_timeout = settings.body_read_timeout
        self.production = settings.environment == "production"

    async def _read_body(self, receive: Receive, deadline: float) -> bytes:
        chunks: list[bytes] = []
        received = 0
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _ClientGone
                    chunk = message.get("body", b"")
                    received += len(chunk)
                    if received > self.max_body_bytes:
                        raise _BodyTooLarge
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise _BodyTimeout from None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        rid_token = request_id_var.set(request_id)
        uid_token = user_id_var.set(None)
        started = time.perf_counter()
        # Measured from the moment the request line and headers were in.
        deadline = asyncio.get_running_loop().time() + self.body_read_timeout
        status_code = 500
        response_started = False
        path = scope.get("path", "")

        async def send_with_id(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_code = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = with_security_headers(headers, production=self.production)
            await send(message)

        try:
            declared = _header(scope, b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                raise _BodyTooLarge
            body = await self._read_body(receive, deadline)
            errors = await unacceptable_text(Headers(scope=scope), body, scope["query_string"])
            if errors:
                summary = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
                refused = problem_response(
                    path, 422, "VALIDATION_ERROR", f"Invalid request: {summary}", errors=errors
                )
                await refused(scope, receive, send_with_id)
                return

            replayed = False

            async def replay() -> Message:
                # The route reads the body from memory; after that, the real channel (a route
                # that waits for the client to disconnect still sees it go).
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_with_id)
        except _BodyTooLarge:
            await problem_response(
                path,
                413,
                "PAYLOAD_TOO_LARGE",
                f"The request body exceeds {self.max_body_bytes} bytes.",
                # The rest of the body is not read: this connection cannot serve another request.
                headers={"Connection": "close"},
            )(scope, receive, send_with_id)
        except _BodyTimeout:
            await problem_response(
                path,
                408,
                "REQUEST_TIMEOUT",
                f"The request body did not arrive within {self.body_read_timeout:g} seconds.",
                headers={"Connection": "close"},
            )(scope, receive, send_with_id)
        except _ClientGone:
            status_code = CLIENT_CLOSED
        except Exception as exc:
            if is_database_unavailable(exc) or is_schema_behind(exc):
                await log_database_error(scope.get("app"), exc)
                response = problem_response(
                    path, 503, "SERVICE_UNAVAILABLE", headers={"Retry-After": "5"}
                )
            else:
                # The traceback goes to the log (with this request id), never to the client.
                logger.opt(exception=exc).error("unhandled exception")
                response = internal_error_response(path)
            if not response_started:
                await response(scope, receive, send_with_id)
            else:  # pragma: no cover - the body was already on its way; nothing sane to add
                status_code = 500
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 2)
            logger.bind(
                method=scope.get("method"),
                path=path,
                status=status_code,
                duration_ms=duration_ms,
            ).info("{} {} {} {}ms", scope.get("method"), path, status_code, duration_ms)
            user_id_var.reset(uid_token)
            request_id_var.reset(rid_token)
