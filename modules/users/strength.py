"""The zxcvbn strength estimate with a bounded cost, in its own worker process.

zxcvbn 4.5's cost is (substitution tables + 2) x n^2 dictionary look-ups: its l33t matcher
re-runs the whole dictionary search once per substitution table, and a password holding the
20 distinct characters of its l33t table (`4@8({[<369!1|70$5+7%2`) makes it try 736 tables. Measured
here: 2.3 s at 64 characters, 0.5 s at 32; our 128-character maximum would be ~9 s. Two bounds:

- at most `MAX_L33T_TABLES` substitution tables, the likeliest substitutes first (each
  letter's usual one, in `L33T_TABLE`'s order: '4' before '@', '(' before '<'). Nothing is
  dropped below four distinct l33t characters; on 1,360 l33ted common passwords and word
  pairs (with l33t-heavy suffixes such as "!+17") the cap turned no refused password into an
  accepted one;
- at most `MAX_SCORED` characters reach zxcvbn: a password that repeats itself is first folded
  to two copies of its period (a cut through a repetition would hide it from zxcvbn and
  overrate the password); the characters past the cut add no strength.

Both run in the worker process (`StrengthChecker`), never in the threads that hash passwords
for logins, and never under the event loop's GIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import re
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

# zxcvbn's own limit is 72 characters (it raises past it); see the module docstring.
MAX_SCORED = 64
# (8 + 2) dictionary searches of 64 characters instead of 738: see scripts/zxcvbn_worst.py and
# the README's security table for the measured worst cases.
MAX_L33T_TABLES = 8

TOO_SLOW = "Password strength could not be checked in time; please try again."


class CheckUnavailable(Exception):
    """The strength check did not answer (timed out, or its worker died). The password is
    then refused with TOO_SLOW: the check fails closed, never open."""


def smallest_period(text: str) -> int:
    """The length of the shortest p with text[i] == text[i - p] for every i >= p
    (len(text) when the text does not repeat itself). Knuth-Morris-Pratt failure function."""
    failure = [0] * len(text)
    k = 0
    for i in range(1, len(text)):
        while k and text[i] != text[k]:
            k = failure[k - 1]
        if text[i] == text[k]:
            k += 1
        failure[i] = k
    return len(text) - failure[-1] if text else 0


def scored_part(password: str, limit: int = MAX_SCORED) -> str:
    """What zxcvbn scores: at most `limit` characters; a self-repeating password folded to
    two copies of its period (zxcvbn rates "XX" as X's guesses x 2, below "XXX..." x n), or
    to one copy when two do not fit. Never more guessable than zxcvbn would rate the whole."""
    period = smallest_period(password)
    if period < len(password):
        if 2 * period <= limit:
            return password[: 2 * period]
        if period <= limit:
            return password[:period]
    return password[:limit]


def capped_subtable(table: dict[str, list[str]], max_tables: int) -> dict[str, list[str]]:
    """The part of a password's l33t subtable that zxcvbn enumerates into at most `max_tables`
    substitution tables: each letter's usual substitutes first (zxcvbn's L33T_TABLE lists them
    that way: '4' before '@', '(' before '<'), rarer ones while the tables still fit.

    Grown from the smallest table, never enumerated from the full one (that enumeration alone
    costs tens of milliseconds for 736 tables)."""
    from zxcvbn import matching

    enumerate_all = getattr(matching, "_gatehouse_original_enumerate", matching.enumerate_l33t_subs)
    ranked = sorted(
        ((rank, letter, sub) for letter, subs in table.items() for rank, sub in enumerate(subs)),
    )
    kept: dict[str, list[str]] = {}
    for _, letter, sub in ranked:
        trial = {key: list(subs) for key, subs in kept.items()}
        trial.setdefault(letter, []).append(sub)
        if len(enumerate_all(trial)) > max_tables:
            continue
        kept = trial
    return kept


def _install_l33t_cap(max_tables: int) -> None:
    """Make zxcvbn's l33t matcher (and the recursive matching of repeated parts, which calls
    it through the module global) try at most `max_tables` substitution tables."""
    from zxcvbn import matching

    original = getattr(matching, "_gatehouse_original_enumerate", None)
    if original is None:
        original = matching.enumerate_l33t_subs
        matching._gatehouse_original_enumerate = original  # type: ignore[attr-defined]

    def enumerate_capped(table: dict[str, list[str]]) -> list[dict[str, str]]:
        tables: list[dict[str, str]] = original(capped_subtable(table, max_tables))
        return tables

    matching.enumerate_l33t_subs = enumerate_capped


def bounded_zxcvbn(
    password: str,
    user_inputs: list[str],
    max_scored: int = MAX_SCORED,
    max_l33t_tables: int = MAX_L33T_TABLES,
) -> dict[str, Any]:
    """zxcvbn with both bounds. zxcvbn keeps the user inputs in a module-level dictionary:
    call it from one thread per process (the worker process has one)."""
    from zxcvbn import zxcvbn  # loads its dictionaries on first use, not at start-up

    _install_l33t_cap(max_l33t_tables)
    result: dict[str, Any] = zxcvbn(scored_part(password, max_scored), user_inputs=user_inputs)
    return result


def email_words(email: str) -> list[str]:
    """What zxcvbn should treat as known to an attacker: the address, its local part and the
    words in it (ada.lovelace@example.com -> ada.lovelace, ada, lovelace)."""
    address = email.casefold()
    local_part = address.split("@", 1)[0]
    words = [address, local_part]
    words += [w for w in re.split(r"[^\w]+|_", local_part) if len(w) >= 3 and w != local_part]
    return words


def strength_problem(password: str, email: str | None, min_score: int) -> str | None:
    """zxcvbn's verdict, with its feedback as the reason. CPU-bound: run it in the worker."""
    result = bounded_zxcvbn(password, email_words(email) if email else [])
    if result["score"] >= min_score:
        return None
    feedback = result.get("feedback") or {}
    parts = ["Password is too easy to guess."]
    if feedback.get("warning"):
        parts.append(str(feedback["warning"]))
    parts += [str(s) for s in feedback.get("suggestions") or []]
    return " ".join(parts)


def _prepare_worker(nice_increment: int) -> None:
    """At the worker process's start: lower its priority (the hashing threads that logins
    need win the CPU) and load zxcvbn's dictionaries once."""
    if nice_increment > 0:
        with contextlib.suppress(AttributeError, OSError):
            os.nice(nice_increment)
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    bounded_zxcvbn("warm-up", [])


def _context() -> multiprocessing.context.BaseContext:
    """forkserver where there is one (Linux): each worker forks from a small server process
    that imported this module (and so the app, through the package) once, instead of from this
    multi-threaded process (fork) or from scratch (spawn: seconds per worker). spawn elsewhere."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


class StrengthChecker:
    """Runs `strength_problem` (or any picklable function) in its own worker process(es):
    the strength check never waits for, nor holds, the threads that hash and verify
    passwords, nor the GIL of the process that answers logins.

    A check that does not answer within `timeout` seconds (queued behind a flood of them)
    raises CheckUnavailable and its queued call is cancelled; so does a check whose worker
    died (the pool is then replaced). The timeout counts from
    the worker being up: the first check after start-up waits for the worker to start.
    """

    def __init__(self, workers: int = 1, timeout: float = 5.0, nice_increment: int = 19) -> None:
        self.workers = workers
        self.timeout = timeout
        self.nice_increment = nice_increment
        self._executor = self._new_executor()
        self._started: Future[None] | None = None

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=_context(),
            initializer=_prepare_worker,
            initargs=(self.nice_increment,),
        )

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """The function's result, run in a worker; CheckUnavailable past `timeout` or when
        the worker died."""
        try:
            if self._started is None:
                self._started = self._executor.submit(_ready)
            # shield: a cancelled request must not cancel the shared start-up call.
            await asyncio.shield(asyncio.wrap_future(self._started))
            future: Future[Any] = self._executor.submit(function, *args)
            # wrap_future cancels the submitted call (if it has not started) on timeout.
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except TimeoutError:
            raise CheckUnavailable from None
        except BrokenProcessPool:
            # A worker died (killed, out of memory): start afresh for the next check.
            broken, self._executor, self._started = self._executor, self._new_executor(), None
            broken.shutdown(wait=False, cancel_futures=True)
            raise CheckUnavailable from None

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def _ready() -> None:
    """Submitted once: returns when a worker process is up."""
