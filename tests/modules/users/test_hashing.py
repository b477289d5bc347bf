"""Password hashing: never on the event loop, argon2id, old bcrypt hashes upgraded at login."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher
from sqlalchemy import select, update

from app.database import create_engine
from modules.users.hashing import THREAD_NAME_PREFIX, HashingOnEventLoopError
from modules.users.models import User
from tests.helpers import PASSWORD, assert_problem, bearer, login, register
from tests.mail import token_in, wait_for_mail

NEW_PASSWORD = "a different long passphrase"
USERS = User.__table__  # fastapi-users' mixin columns are not typed as SQL expressions


LINUX = sys.platform == "linux"  # per-thread nice is a Linux feature


def _thread_nice() -> int | None:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) if LINUX else None


class RecordingPasswordHash(PasswordHash):
    """The real argon2id/bcrypt hashing, noting which thread ran each call."""

    def __init__(self) -> None:
        super().__init__((Argon2Hasher(), BcryptHasher()))
        self.calls: list[dict[str, Any]] = []

    def _note(self, operation: str) -> None:
        thread = threading.current_thread()
        self.calls.append(
            {
                "operation": operation,
                "ident": threading.get_ident(),
                "name": thread.name,
                "nice": _thread_nice(),
            }
        )

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self._note("hash")
        return super().hash(password, salt=salt)

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        self._note("verify")
        return super().verify(password, hash)

    def verify_and_update(
        self, password: str | bytes, hash: str | bytes
    ) -> tuple[bool, str | None]:
        self._note("verify_and_update")
        return super().verify_and_update(password, hash)


async def _stored_hash(database_url: str, email: str) -> str:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            query = select(USERS.c.hashed_password).where(USERS.c.email == email)
            result = await connection.execute(query)
            return str(result.scalar_one())
    finally:
        await engine.dispose()


async def _store_hash(database_url: str, email: str, hashed: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(User).where(USERS.c.email == email).values(hashed_password=hashed)
            )
    finally:
        await engine.dispose()


async def test_no_hash_or_verify_runs_on_the_event_loop_thread(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    recorder = RecordingPasswordHash()
    app.state.users.hasher.password_hash = recorder
    loop_thread = threading.get_ident()  # the test and the app share this loop

    await register(client, "ada@example.com")  # hash
    tokens = await login(client, "ada@example.com")  # verify_and_update
    unknown = await client.post(  # the dummy verify for an unknown account
        "/auth/jwt/login", data={"username": "nobody@example.com", "password": PASSWORD}
    )
    assert_problem(unknown, 400, "LOGIN_BAD_CREDENTIALS")
    changed = await client.patch(  # hash, through _update
        "/users/me",
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
        headers=bearer(tokens["access_token"]),
    )
    assert changed.status_code == 200, changed.text
    forgot = await client.post("/auth/forgot-password", json={"email": "ada@example.com"})
    assert forgot.status_code == 202
    token = token_in(await wait_for_mail(app, "ada@example.com", "Reset"))  # an HMAC, no hash
    reset = await client.post(  # HMAC check, then hash
        "/auth/reset-password", json={"token": token, "password": PASSWORD}
    )
    assert reset.status_code == 204, reset.text
    await login(client, "ada@example.com")

    operations = [call["operation"] for call in recorder.calls]
    # register, dummy, PATCH, reset: hashes; 2 logins + current_password: verify_and_update
    assert operations.count("hash") >= 4, operations
    assert operations.count("verify_and_update") >= 3, operations
    assert "verify" in operations, operations
    base_nice = _thread_nice()
    for call in recorder.calls:
        assert call["ident"] != loop_thread, call
        assert call["name"].startswith(THREAD_NAME_PREFIX), call
        if base_nice is not None:
            # The pool's threads lowered their own priority; the loop thread did not.
            assert call["nice"] >= min(19, base_nice + 10), call


async def test_the_synchronous_helper_refuses_to_hash_on_the_loop(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    # fastapi-users' own (synchronous) hashing path is closed: a forgotten override fails
    # loudly in a test instead of stalling every request in production.
    guard = app.state.users.hasher.guard
    with pytest.raises(HashingOnEventLoopError):
        guard.hash(PASSWORD)
    with pytest.raises(HashingOnEventLoopError):
        guard.verify_and_update(PASSWORD, "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA")


async def test_new_hashes_are_argon2id_with_at_least_the_checklist_cost(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await register(client, "ada@example.com")
    stored = await _stored_hash(database_url, "ada@example.com")
    assert stored.startswith("$argon2id$"), stored[:10]
    params = dict(part.split("=") for part in stored.split("$")[3].split(","))
    assert int(params["m"]) >= 19 * 1024 and int(params["t"]) >= 2 and int(params["p"]) >= 1
    assert PASSWORD not in stored


async def test_an_old_bcrypt_hash_logs_in_and_is_upgraded_to_argon2id(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await register(client, "ada@example.com")
    legacy = BcryptHasher(rounds=4).hash(PASSWORD)
    await _store_hash(database_url, "ada@example.com", legacy)

    wrong = await client.post(
        "/auth/jwt/login", data={"username": "ada@example.com", "password": "not the password"}
    )
    assert_problem(wrong, 400, "LOGIN_BAD_CREDENTIALS")
    assert await _stored_hash(database_url, "ada@example.com") == legacy  # no upgrade on failure

    await login(client, "ada@example.com")
    upgraded = await _stored_hash(database_url, "ada@example.com")
    assert upgraded.startswith("$argon2id$"), upgraded[:10]
    await login(client, "ada@example.com")  # and the new hash works


async def test_a_password_over_72_bytes_against_a_bcrypt_hash_is_a_mismatch_not_a_500(
    client: httpx.AsyncClient, database_url: str
) -> None:
    # bcrypt 5 raises on passwords over 72 bytes instead of truncating them.
    await register(client, "ada@example.com")
    await _store_hash(database_url, "ada@example.com", BcryptHasher(rounds=4).hash(PASSWORD))
    response = await client.post(
        "/auth/jwt/login", data={"username": "ada@example.com", "password": "long " * 30}
    )
    assert_problem(response, 400, "LOGIN_BAD_CREDENTIALS")
