"""The outermost layer of every request: request id, access line, body limit, security
headers (`app/security_headers.py`), last-resort 500.

Pure ASGI (not BaseHTTPMiddleware) so the request id set here is seen by every log line the
request writes, and so an unhandled exception still leaves with the request id on it.
"""

from __future__ import annotations

import re
import time
import uuid

from loguru import logger
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.context import request_id_var, user_id_var
from app.errors import internal_error_response, is_database_unavailable, problem_response
from app.security_headers import with_security_headers
from app.settings import CoreSettings

REQUEST_ID_HEADER = "X-Request-ID"
# A client's id is kept only when it is short and printable: it ends up in every log line.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


class _BodyTooLarge(Exception):
    pass


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, settings: CoreSettings) -> None:
        self.app = app
        self.max_body_bytes = settings.max_body_bytes
        self.production = settings.environment == "production"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        rid_token = request_id_var.set(request_id)
        uid_token = user_id_var.set(None)
        started = time.perf_counter()
        status_code = 500
        response_started = False
        path = scope.get("path", "")

        rejected = False  # a 413 went out while the app was reading the body

        async def send_with_id(message: Message) -> None:
            nonlocal status_code, response_started
            if rejected:
                return  # whatever the app answers after our 413 is dropped
            if message["type"] == "http.response.start":
                response_started = True
                status_code = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = with_security_headers(headers, production=self.production)
            await send(message)

        received = 0

        def too_large() -> Response:
            return problem_response(
                path,
                413,
                "PAYLOAD_TOO_LARGE",
                f"The request body exceeds {self.max_body_bytes} bytes.",
            )

        async def limited_receive() -> Message:
            nonlocal received, rejected
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes and not response_started:
                    # Answer now: the framework turns errors raised while reading the body
                    # into its own 400, so raising alone would not reach the client.
                    await too_large()(scope, receive, send_with_id)
                    rejected = True
                    raise _BodyTooLarge
            return message

        try:
            declared = _header(scope, b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                raise _BodyTooLarge
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            if not response_started:
                await too_large()(scope, receive, send_with_id)
        except Exception as exc:
            if is_database_unavailable(exc):
                logger.error("database unavailable: {}", type(exc).__name__)
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
