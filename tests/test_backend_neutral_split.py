"""`backend_neutral` tests run exactly once across `make test` and `make test-postgres`, with
`.ci/run`'s split (SPLIT_BACKEND_NEUTRAL=1) or without it (`make test` runs them all)."""

from __future__ import annotations

import pytest

from tests.conftest import backend_neutral_runs_here


@pytest.mark.parametrize("ci_run", ["sqlite", "postgres"])
@pytest.mark.parametrize("split", [False, True])
def test_each_backend_neutral_test_runs_in_exactly_one_suite(ci_run: str, split: bool) -> None:
    runs = [
        on_postgres
        for on_postgres in (False, True)
        if backend_neutral_runs_here(ci_run, on_postgres, split)
    ]
    if split:
        assert runs == [ci_run == "postgres"]
    else:
        assert runs == [False]  # `make test` alone runs every one of them
