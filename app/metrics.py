"""Prometheus metrics: the helpers modules declare theirs with, the HTTP middleware, `/metrics`.

One view across worker processes: when PROMETHEUS_MULTIPROC_DIR is set (before this module is
imported: `python -m app serve --workers N` sets it up, see `multiprocess_dir`), every process
writes its samples to files there and `/metrics`, whichever worker answers, reads them all
(prometheus-client's multiprocess mode). Otherwise the process's own registry answers.

Modules declare their metrics at import time with `counter`, `histogram` and `gauge` (names
get the `gatehouse_` prefix); the app knows none of them. Label values must come from a small
fixed set (an outcome, a circuit's name), never from a request: each value is a new series.
"""

from __future__ import annotations

import hmac
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Request, Response
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.exposition import choose_encoder
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import problem_response

PREFIX = "gatehouse_"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The label of requests no route matched (scanners, typos): one series, whatever the path.
UNMATCHED = "unmatched"
# The label of a request whose client left before any answer (nginx's code).
CLIENT_CLOSED = 499
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds. Logins hash a password (~0.1-1 s); most other requests take milliseconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

GaugeMode = Literal["livesum", "livemax", "livemin", "liveall", "livemostrecent"]


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def counter(name: str, documentation: str, labelnames: Sequence[str] = ()) -> Counter:
    return Counter(PREFIX + name, documentation, labelnames)


def histogram(
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    buckets: Sequence[float] = LATENCY_BUCKETS,
) -> Histogram:
    return Histogram(PREFIX + name, documentation, labelnames, buckets=buckets)


def gauge(
    name: str, documentation: str, labelnames: Sequence[str] = (), mode: GaugeMode = "livesum"
) -> Gauge:
    """`mode` says how the workers' values add up in one view: `livesum` (a queue length),
    `livemax` (the worst state any worker sees)... Only live processes count."""
    return Gauge(PREFIX + name, documentation, labelnames, multiprocess_mode=mode)


# The app's own metrics (modules declare theirs in their own files).
HTTP_REQUESTS = counter(
    "http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ("method", "route", "status"),
)
HTTP_LATENCY = histogram(
    "http_request_duration_seconds",
    "Time from the request's arrival to the end of its answer, by method and route template.",
    ("method", "route"),
)
JOB_FAILURES = counter(
    "background_job_failures_total",
    "Background jobs (work after the answer, scheduled housekeeping) that failed, by job.",
    ("job",),
)


def count_job_failure(job: str) -> None:
    JOB_FAILURES.labels(job=job).inc()


def route_template(scope: Scope) -> str:
    """The path template of the route that answered (`/users/{id}`), from what routing wrote
    into the scope (the same dict passed down). A route of an included router knows only its
    own part (`/{id}`): FastAPI keeps the full template in its effective route context."""
    context = scope.get("fastapi", {}).get("effective_route_context")
    template = getattr(context, "path_format", None) or getattr(scope.get("route"), "path", None)
    return template or UNMATCHED


class MetricsMiddleware:
    """Counts and times every HTTP request, labelled by route template (never the raw path:
    `/users/{id}`, not one series per id). Pure ASGI and cheap: per request one dict lookup
    for the label set's series, one counter increment and one histogram observation."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # (method, route template, status) -> its series, resolved once per label set.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = CLIENT_CLOSED

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            template = route_template(scope)
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            key = (method, template, status)
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = (
                    HTTP_REQUESTS.labels(method, template, str(status)),
                    HTTP_LATENCY.labels(method, template),
                )
            series[0].inc()
            series[1].observe(time.perf_counter() - started)


def exposition(accept: str | None) -> tuple[bytes, str]:
    """(body, content type) in the format the scraper asks for (Prometheus text, or
    OpenMetrics): every worker's samples in multiprocess mode, else this process's."""
    encoder, content_type = choose_encoder(accept or "")
    if multiprocess_mode():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return encoder(registry), content_type
    return encoder(REGISTRY), content_type


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text format. Public by declaration (mounted only when METRICS_ENABLED);
    with METRICS_TOKEN set, only for `Authorization: Bearer <token>`."""
    token: str | None = request.app.state.metrics_token
    if token is not None and not _authorized(request.headers.get("authorization"), token):
        return problem_response(
            request.url.path,
            401,
            "UNAUTHORIZED",
            "The metrics need the bearer token of METRICS_TOKEN.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Reading every worker's files is blocking file work: off the event loop.
    body, content_type = await run_in_threadpool(exposition, request.headers.get("accept"))
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


def _authorized(header: str | None, token: str) -> bool:
    scheme, _, presented = (header or "").partition(" ")
    # Constant time: the comparison must not tell how much of a guess was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.encode()
    )


def mark_this_process_dead() -> None:
    """At a worker's exit: its live gauges (a queue length) leave the view."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


@contextmanager
def multiprocess_dir(workers: int) -> Iterator[Path | None]:
    """For a supervisor about to start `workers` processes (before they import anything):
    with several, they need one PROMETHEUS_MULTIPROC_DIR. A directory given in the environment
    is emptied of its sample files first (stale samples of an earlier run would be counted
    again); otherwise a private temporary one is made, and removed at the end."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
        yield path
        return
    if workers <= 1:
        yield None
        return
    made = Path(tempfile.mkdtemp(prefix="gatehouse-metrics-"))
    os.environ[MULTIPROC_ENV] = str(made)
    try:
        yield made
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(made, ignore_errors=True)
