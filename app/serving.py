"""What a serving process knows about how it is served, for what must know it (a cache held in
process memory is only right when one process serves every request).

`python -m app serve` records how many worker processes it starts; any other way of serving
(bare `uvicorn`, gunicorn) records nothing, and `serve_workers()` is then None: unknown.
"""

from __future__ import annotations

import os

SERVE_WORKERS_ENV = "GATEHOUSE_SERVE_WORKERS"


def record_serve_workers(workers: int) -> None:
    # The environment, not a global: uvicorn's workers (and --reload's child) inherit it.
    os.environ[SERVE_WORKERS_ENV] = str(workers)


def serve_workers() -> int | None:
    value = os.environ.get(SERVE_WORKERS_ENV, "")
    return int(value) if value.isdigit() else None
