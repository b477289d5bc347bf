"""The event hub: the users module publishes its facts after they are stored; a failing handler
is logged with the request id and never changes the response."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import FastAPI

from app.events import (
    Event,
    EventHub,
    SessionRevoked,
    UserDeleted,
    UserPasswordChanged,
    UserRegistered,
    UserVerified,
    on,
)
from modules.users.models import User
from tests.conftest import LogCapture
from tests.helpers import PASSWORD, bearer, login, register
from tests.mail import token_in, wait_for_mail


class Recorder:
    """Subscribes to every identity event; records what it got and whether it was stored."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.events: list[Event] = []
        self.stored_at_publish: list[bool] = []
        hub: EventHub = app.state.events
        for kind in (UserRegistered, UserVerified, UserPasswordChanged, UserDeleted):
            hub.subscribe(on(kind, self.record))
        hub.subscribe(on(SessionRevoked, self.record))

    async def record(self, event: Any) -> None:
        self.events.append(event)
        if isinstance(event, UserRegistered):
            # Another connection sees the user: the transaction committed before publishing.
            async with self.app.state.database.sessionmaker() as session:
                found = await session.get(User, event.user_id)
            self.stored_at_publish.append(found is not None)

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


async def test_a_failing_handler_leaves_the_register_response_unchanged(
    app: FastAPI, client: httpx.AsyncClient, logs: LogCapture
) -> None:
    reached: list[uuid.UUID] = []

    async def broken(event: UserRegistered) -> None:
        raise RuntimeError("handler bug with secret detail")

    async def after(event: UserRegistered) -> None:
        reached.append(event.user_id)

    baseline = await client.post(
        "/auth/register", json={"email": "first@example.com", "password": PASSWORD}
    )
    app.state.events.subscribe(on(UserRegistered, broken))
    app.state.events.subscribe(on(UserRegistered, after))
    response = await client.post(
        "/auth/register", json={"email": "ada@example.com", "password": PASSWORD}
    )

    assert response.status_code == baseline.status_code == 201
    assert set(response.json()) == set(baseline.json())
    assert response.json()["email"] == "ada@example.com"
    # The handlers after the broken one still ran.
    assert reached == [uuid.UUID(response.json()["id"])]
    failures = logs.find(lambda r: r["message"].startswith("event handler failed"))
    assert len(failures) == 1
    assert "user.registered" in failures[0]["message"]
    assert "RuntimeError" in failures[0]["message"]
    assert failures[0]["request_id"] == response.headers["x-request-id"]
    assert "secret detail" not in logs.text


async def test_users_publishes_its_facts_after_they_are_stored(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    recorder = Recorder(app)
    user = await register(client, "ada@example.com")
    user_id = uuid.UUID(user["id"])
    assert [e.user_id for e in recorder.of(UserRegistered)] == [user_id]
    assert recorder.of(UserRegistered)[0].email == "ada@example.com"
    assert recorder.stored_at_publish == [True]

    await client.post("/auth/request-verify-token", json={"email": "ada@example.com"})
    token = token_in(await wait_for_mail(app, "ada@example.com", "Confirm"))
    assert (await client.post("/auth/verify", json={"token": token})).status_code == 200
    assert [e.user_id for e in recorder.of(UserVerified)] == [user_id]

    await login(client, "ada@example.com")  # another session, ended by the change below
    second = await login(client, "ada@example.com")
    changed = await client.patch(
        "/users/me",
        json={"password": "another quite long passphrase", "current_password": PASSWORD},
        headers=bearer(second["access_token"]),
    )
    assert changed.status_code == 200, changed.text
    assert [(e.user_id, e.how) for e in recorder.of(UserPasswordChanged)] == [(user_id, "changed")]
    # The change ended the other session (all but the caller's).
    revoked = recorder.of(SessionRevoked)
    assert [(e.user_id, e.session_id, e.reason) for e in revoked] == [
        (user_id, None, "password changed")
    ]

    logout = await client.post("/auth/jwt/logout", headers=bearer(second["access_token"]))
    assert logout.status_code in (200, 204)
    last = recorder.of(SessionRevoked)[-1]
    assert (last.user_id, last.reason) == (user_id, "logout")
    assert last.session_id is not None


async def test_deleting_a_user_publishes_user_deleted(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    from sqlalchemy import update

    recorder = Recorder(app)
    await register(client, "root@example.com")
    victim = await register(client, "bob@example.com")
    async with app.state.database.sessionmaker() as session:
        table = User.metadata.tables["user"]
        await session.execute(
            update(table).where(table.c.email == "root@example.com").values(is_superuser=True)
        )
        await session.commit()
    root = await login(client, "root@example.com")
    deleted = await client.delete(f"/users/{victim['id']}", headers=bearer(root["access_token"]))
    assert deleted.status_code == 204, deleted.text
    assert [e.user_id for e in recorder.of(UserDeleted)] == [uuid.UUID(victim["id"])]


async def test_refresh_token_reuse_publishes_session_revoked(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    recorder = Recorder(app)
    user = await register(client, "ada@example.com")
    tokens = await login(client, "ada@example.com")
    first = await client.post("/auth/jwt/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert first.status_code == 200, first.text
    replay = await client.post("/auth/jwt/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert replay.status_code == 401
    revoked = recorder.of(SessionRevoked)
    assert [(e.user_id, e.reason) for e in revoked] == [(uuid.UUID(user["id"]), "reuse")]
    assert revoked[0].session_id is not None
