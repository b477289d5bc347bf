"""Password policy: 8-128 characters, no composition rules, zxcvbn refuses guessable ones,
checked exactly as typed, on register, reset and change alike; the strength check's cost is
bounded and it runs apart from the threads that logins need."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from zxcvbn import matching

from app.settings import CoreSettings
from modules.users import strength
from modules.users.settings import UsersSettings
from tests.helpers import PASSWORD, assert_problem, bearer, login, register
from tests.mail import token_in, wait_for_mail
from tests.modules.users.apps import client_for, running_app

STRONG_8 = "T7r#q2Lp"

# The costliest inputs scripts/zxcvbn_worst.py found (l33t-heavy: every character of zxcvbn's
# l33t table, l33ted words, repeated substitutable characters), at the 128 maximum and at the
# 64 that zxcvbn scores. Uncapped, each makes zxcvbn try 736 substitution tables.
WORST_INPUTS = [
    "!$%(+0123456789<@[{|8@sket8@l7!$%(+0123456789<@[{|8@sket8@l7t$%1+002@456789<@o3$8@sktt8kq7"
    "!r%w10123+t678h<@[{54@t+tr8@l7p$oo@h12",
    "!$%(+0123456789<@[{|8@sket8@l7!$%(+0123456789<@[{|8@sket8@l7t$%(+0023456789<@o3|8@sktt8kq7"
    "!r%2+0123+5678h<@[{|8@sktt8@l7p$%o+h12",
    ("1|7(<{[%2@4$5+0!3869" + "p4$$w0rd7r0ub4d0r" * 8)[:128],
    ("4@8({[<369!1|70$5+7%2" * 7)[:64],
]


async def _register(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/auth/register", json={"email": email, "password": password})


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("password", "common password"),
        ("12345678", "common password"),
        ("abcdefgh", "Sequences"),
    ],
)
async def test_common_passwords_are_refused_with_zxcvbn_feedback(
    client: httpx.AsyncClient, password: str, reason: str
) -> None:
    response = await _register(client, "ada@example.com", password)
    body = assert_problem(response, 400, "REGISTER_INVALID_PASSWORD")
    assert "too easy to guess" in body["detail"]
    assert reason in body["detail"]


async def test_a_password_equal_to_the_email_local_part_is_refused(
    client: httpx.AsyncClient,
) -> None:
    response = await _register(client, "margaret.hamilton@example.com", "margaret.hamilton")
    assert_problem(response, 400, "REGISTER_INVALID_PASSWORD")


async def test_a_password_built_from_the_email_is_refused(client: httpx.AsyncClient) -> None:
    # zxcvbn scores "zorblaxquintrell" 4 on its own; the email's words make it guessable.
    refused = await _register(client, "zorblax.quintrell@example.com", "zorblaxquintrell")
    body = assert_problem(refused, 400, "REGISTER_INVALID_PASSWORD")
    assert "too easy to guess" in body["detail"]
    await register(client, "someone.else@example.com", "zorblaxquintrell")


@pytest.mark.parametrize(
    "password",
    [
        "the quiet river runs under seven old bridges",  # lower-case passphrase
        "mot de passe avec des espaces",  # spaces
        "пароль для тестов мой",  # Unicode
        "パスワードは長い文字列です",  # Unicode, no spaces
        STRONG_8,  # exactly 8
        ("a long passphrase of sixty four characters, all of it kept here!")[:64],  # 64
    ],
)
async def test_no_composition_rules_passphrases_spaces_unicode_and_the_bounds_pass(
    client: httpx.AsyncClient, password: str
) -> None:
    await register(client, "ada@example.com", password)
    await login(client, "ada@example.com", password)


async def test_the_length_bounds_are_8_and_128(client: httpx.AsyncClient) -> None:
    assert len(STRONG_8[:7]) == 7
    short = await _register(client, "ada@example.com", STRONG_8[:7])
    assert "at least 8" in assert_problem(short, 400, "REGISTER_INVALID_PASSWORD")["detail"]

    sixty_four = ("a long passphrase of sixty four characters, all of it kept here!")[:64]
    assert len(sixty_four) == 64
    await register(client, "sixty.four@example.com", sixty_four)

    for length in (129, 60_000):
        over_long = ("x9 Q" * length)[:length]
        long = await _register(client, "ada@example.com", over_long)
        body = assert_problem(long, 400, "REGISTER_INVALID_PASSWORD")
        assert "at most 128" in body["detail"]


async def test_the_password_is_checked_exactly_as_typed(client: httpx.AsyncClient) -> None:
    typed = " spaced passphrase, kept as typed "
    await register(client, "ada@example.com", typed)
    for variant in (typed.strip(), typed.upper(), typed[:-1], typed + " "):
        response = await client.post(
            "/auth/jwt/login", data={"username": "ada@example.com", "password": variant}
        )
        assert_problem(response, 400, "LOGIN_BAD_CREDENTIALS")
    await login(client, "ada@example.com", typed)


async def test_reset_password_applies_the_policy(client: httpx.AsyncClient, app: FastAPI) -> None:
    await register(client, "ada@example.com")
    asked = await client.post("/auth/forgot-password", json={"email": "ada@example.com"})
    assert asked.status_code == 202
    token = token_in(await wait_for_mail(app, "ada@example.com", "Reset"))

    weak = await client.post("/auth/reset-password", json={"token": token, "password": "password"})
    body = assert_problem(weak, 400, "RESET_PASSWORD_INVALID_PASSWORD")
    assert "too easy to guess" in body["detail"]

    strong = await client.post(
        "/auth/reset-password", json={"token": token, "password": "a brand new passphrase"}
    )
    assert strong.status_code == 204, strong.text
    await login(client, "ada@example.com", "a brand new passphrase")


async def test_changing_the_password_applies_the_policy(client: httpx.AsyncClient) -> None:
    await register(client, "ada@example.com")
    tokens = await login(client, "ada@example.com")
    for weak, reason in (("12345678", "too easy to guess"), ("short", "at least 8")):
        response = await client.patch(
            "/users/me",
            json={"password": weak, "current_password": PASSWORD},
            headers=bearer(tokens["access_token"]),
        )
        body = assert_problem(response, 400, "UPDATE_USER_INVALID_PASSWORD")
        assert reason in body["detail"]
    await login(client, "ada@example.com", PASSWORD)  # unchanged


def _hold_until(path: str, limit: float) -> None:
    """Occupies the worker that runs it until `path` exists (a thread or a process alike)."""
    deadline = time.monotonic() + limit
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)


class _RecordingChecks:
    """Wraps the policy's runner: notes when each strength check starts and ends."""

    def __init__(self, app: FastAPI) -> None:
        runtime = app.state.users
        self._run = runtime.policy.run
        self.started = 0
        self.finished = 0
        self.both_started = asyncio.Event()
        policy = dataclasses.replace(runtime.policy, run=self.run)
        app.state.users = dataclasses.replace(runtime, policy=policy)

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        self.started += 1
        if self.started == 2:
            self.both_started.set()
        try:
            return await self._run(function, *args)
        finally:
            self.finished += 1


async def test_a_login_completes_before_worst_case_strength_checks_do(
    settings: CoreSettings, tmp_path: Path
) -> None:
    """Two registrations with worst-case passwords, then a login: the login answers while
    both strength checks are still waiting for the strength worker (held busy here, standing
    for any amount of strength-check work), i.e. it does not queue behind them. Before, the
    checks ran under a global lock in the hashing threads: the login waited for both."""
    users = UsersSettings(
        password_hash_workers=2, password_strength_workers=1, password_strength_timeout=120
    )
    release = tmp_path / "release"
    async with running_app(settings, users) as app, client_for(app) as client:
        await register(client, "ada@example.com")
        held = asyncio.ensure_future(app.state.users.policy.run(_hold_until, str(release), 100))
        checks = _RecordingChecks(app)
        try:
            registrations = [
                asyncio.ensure_future(
                    client.post(
                        "/auth/register",
                        json={"email": f"worst{n}@example.com", "password": WORST_INPUTS[n]},
                    )
                )
                for n in range(2)
            ]
            # Deadlock guards below, not timings: the login needs ~0.1 s of hashing.
            await asyncio.wait_for(checks.both_started.wait(), 90)
            await asyncio.wait_for(login(client, "ada@example.com"), 90)
            assert checks.finished == 0, "the login waited for the strength checks"
        finally:
            release.touch()
            await held
        for answer in await asyncio.gather(*registrations):
            # Each got a verdict (bounded work), not the fail-closed "try again".
            assert answer.status_code in (201, 400), answer.text
            assert strength.TOO_SLOW not in answer.text
        assert checks.finished == 2


async def test_a_strength_check_that_times_out_fails_closed(
    settings: CoreSettings, tmp_path: Path
) -> None:
    users = UsersSettings(password_strength_workers=1, password_strength_timeout=0.5)
    release = tmp_path / "release"
    async with running_app(settings, users) as app, client_for(app) as client:
        await register(client, "ada@example.com")  # the worker is up
        held = asyncio.ensure_future(app.state.users.policy.run(_hold_until, str(release), 30))
        # Let the holder submit its call before the request does: the request's dependencies
        # are async (no thread-pool hop), so it would otherwise reach the worker first.
        await asyncio.sleep(0)
        try:
            response = await client.post(
                "/auth/register", json={"email": "eve@example.com", "password": PASSWORD}
            )
        finally:
            release.touch()
            with pytest.raises(strength.CheckUnavailable):
                await held  # the holder's own call timed out too
        body = assert_problem(response, 400, "REGISTER_INVALID_PASSWORD")
        assert body["detail"] == strength.TOO_SLOW
        # Not accepted unchecked: the account does not exist.
        bad = await client.post(
            "/auth/jwt/login", data={"username": "eve@example.com", "password": PASSWORD}
        )
        assert_problem(bad, 400, "LOGIN_BAD_CREDENTIALS")


async def test_a_password_that_repeats_itself_is_scored_whole(client: httpx.AsyncClient) -> None:
    # zxcvbn rates the whole (76 characters) 1; its first 64 characters alone 4: a cut through
    # the repetition hid it. The repeat is folded before the cut.
    half = "qwertyabcdefghijklmnopabcdefghijklmnop"
    refused = await _register(client, "ada@example.com", half + half)
    body = assert_problem(refused, 400, "REGISTER_INVALID_PASSWORD")
    assert "too easy to guess" in body["detail"]


class _LookupCounter:
    """Counts zxcvbn's dictionary look-ups (one per substring per ranked dictionary): its
    work, independent of the machine's load."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.lookups = 0
        original = matching.dictionary_match

        def counting(password: str, _ranked_dictionaries: dict[str, dict[str, int]]) -> object:
            n = len(password)
            self.lookups += n * (n + 1) // 2 * len(_ranked_dictionaries)
            return original(password, _ranked_dictionaries)

        monkeypatch.setattr(matching, "dictionary_match", counting)

    def work(self, password: str, max_l33t_tables: int) -> int:
        self.lookups = 0
        strength.bounded_zxcvbn(password, [], max_l33t_tables=max_l33t_tables)
        return self.lookups


@pytest.mark.parametrize("password", WORST_INPUTS)
def test_the_worst_inputs_found_are_scored_within_the_bound(
    password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = _LookupCounter(monkeypatch)
    try:
        uncapped = counter.work(password, max_l33t_tables=10**6)  # what zxcvbn alone does
        capped = counter.work(password, max_l33t_tables=strength.MAX_L33T_TABLES)
    finally:
        strength.bounded_zxcvbn("restore the cap", [])
    dictionaries = len(matching.RANKED_DICTIONARIES)
    n = strength.MAX_SCORED
    # Per dictionary search: plain, reversed and one per table; the repeated parts matched
    # again add at most a third (each at most half as long: 1/4 + 1/16 + ...).
    bound = (strength.MAX_L33T_TABLES + 2) * n * (n + 1) // 2 * dictionaries * 4 // 3
    assert capped <= bound, (capped, bound)
    assert capped * 20 <= uncapped, (capped, uncapped)


def test_a_self_repeating_password_is_folded_before_the_cut() -> None:
    assert strength.scored_part("abc" * 40) == "abcabc"
    half = "x" * 33 + "y" * 7
    assert strength.scored_part(half * 3) == half  # two copies would not fit in 64
    assert strength.scored_part("no repeat at all, one 128 string" * 4)[:32] == (
        "no repeat at all, one 128 string"
    )
    long = "".join(chr(0x4E00 + i) for i in range(128))
    assert strength.scored_part(long) == long[:64]
