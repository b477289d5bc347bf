"""Changing the address of an account (ASVS 7.5.1): it needs the current password, wrong
guesses count like failed logins, a superuser patching itself follows the same rules, the old
address is told (with an undo link that really gives the account back), the new address is
unverified until confirmed."""

from __future__ import annotations

from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

import httpx
from fastapi import FastAPI

from app.factory import create_app
from app.settings import CoreSettings
from modules.integrations.settings import IntegrationsSettings
from modules.users.settings import UsersSettings
from tests.helpers import PASSWORD, assert_problem, bearer, login, register
from tests.mail import sent_mail, token_in, wait_for_mail
from tests.modules.users.apps import client_for, running_app
from tests.modules.users.test_sessions import make_superuser
from tests.upstreams import app_client, eventually, start_smtp_server

OLD = "ada@example.com"
NEW = "mallory@example.net"
WRONG = "not the password at all"
NEW_PASSWORD = "another long passphrase for ada"


async def test_changing_the_email_needs_the_current_password(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await register(client, OLD)
    stolen = bearer((await login(client, OLD))["access_token"])
    for proof in ({}, {"current_password": WRONG}, {"current_password": ""}):
        refused = await client.patch("/users/me", json={"email": NEW, **proof}, headers=stolen)
        body = assert_problem(refused, 400, "UPDATE_USER_INVALID_PASSWORD")
        assert "current_password" in body["detail"]
    assert (await client.get("/users/me", headers=stolen)).json()["email"] == OLD
    # The takeover chain is cut: the attacker's address has no account to reset.
    await client.post("/auth/forgot-password", json={"email": NEW})
    await app.state.background.drain()
    assert [m for m in sent_mail(app) if m.to == NEW] == []

    changed = await client.patch(
        "/users/me", json={"email": NEW, "current_password": PASSWORD}, headers=stolen
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["email"] == NEW
    assert changed.json()["is_verified"] is False
    # The old address is told, with the way back; the new one gets a confirmation link.
    notice = await wait_for_mail(app, OLD, "email address of your account was changed")
    assert NEW in notice.body
    assert "/auth/undo-email-change?token=" in notice.body
    confirm = token_in(await wait_for_mail(app, NEW, "Confirm"))
    verified = await client.post("/auth/verify", json={"token": confirm})
    assert verified.status_code == 200, verified.text
    assert verified.json()["is_verified"] is True


async def test_the_old_address_undoes_a_change_and_locks_the_changer_out(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await register(client, OLD)
    owner = await login(client, OLD)
    # Whoever changes the address knows the password and holds a session.
    attacker = await login(client, OLD)
    changed = await client.patch(
        "/users/me",
        json={"email": NEW, "current_password": PASSWORD},
        headers=bearer(attacker["access_token"]),
    )
    assert changed.status_code == 200, changed.text
    undo = token_in(await wait_for_mail(app, OLD, "email address of your account was changed"))

    weak = await client.post("/auth/undo-email-change", json={"token": undo, "password": "abc"})
    assert_problem(weak, 400, "UNDO_EMAIL_CHANGE_INVALID_PASSWORD")
    undone = await client.post(
        "/auth/undo-email-change", json={"token": undo, "password": NEW_PASSWORD}
    )
    assert undone.status_code == 200, undone.text
    assert undone.json()["email"] == OLD
    assert undone.json()["is_verified"] is True  # the mail reached it: that is the proof
    # Every session ended, the password the changer knew is gone.
    for pair in (owner, attacker):
        gone = await client.get("/users/me", headers=bearer(pair["access_token"]))
        assert_problem(gone, 401, "UNAUTHORIZED")
    stale = await client.post("/auth/jwt/login", data={"username": NEW, "password": PASSWORD})
    assert_problem(stale, 400, "LOGIN_BAD_CREDENTIALS")
    await login(client, OLD, NEW_PASSWORD)
    await wait_for_mail(app, OLD, "Your password was changed")
    # The token works once.
    again = await client.post(
        "/auth/undo-email-change", json={"token": undo, "password": "yet another passphrase"}
    )
    assert_problem(again, 400, "UNDO_EMAIL_CHANGE_BAD_TOKEN")
    forged = await client.post(
        "/auth/undo-email-change", json={"token": "forged", "password": NEW_PASSWORD}
    )
    assert_problem(forged, 400, "UNDO_EMAIL_CHANGE_BAD_TOKEN")


async def test_wrong_current_password_guesses_count_like_failed_logins(
    settings: CoreSettings,
) -> None:
    users = UsersSettings(login_max_failures=3)
    async with running_app(settings, users) as app, client_for(app) as client:
        await register(client, OLD)
        stolen = bearer((await login(client, OLD))["access_token"])
        guesses = [{"email": NEW}, {"password": NEW_PASSWORD}, {"email": NEW}]
        for guess in guesses:
            refused = await client.patch(
                "/users/me", json={**guess, "current_password": WRONG}, headers=stolen
            )
            assert_problem(refused, 400, "UPDATE_USER_INVALID_PASSWORD")
        # Past the limit even the right password is refused, and so is a login.
        for change in ({"email": NEW}, {"password": NEW_PASSWORD}):
            limited = await client.patch(
                "/users/me", json={**change, "current_password": PASSWORD}, headers=stolen
            )
            assert_problem(limited, 429, "RATE_LIMITED")
            assert 1 <= int(limited.headers["retry-after"]) <= 900
        blocked = await client.post("/auth/jwt/login", data={"username": OLD, "password": PASSWORD})
        assert_problem(blocked, 429, "RATE_LIMITED")
        assert (await client.get("/users/me", headers=stolen)).json()["email"] == OLD


async def test_a_superuser_patching_itself_needs_its_current_password(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    root = await register(client, "root@example.com")
    await make_superuser(app, "root@example.com")
    admin = bearer((await login(client, "root@example.com"))["access_token"])
    own = f"/users/{root['id']}"
    for change in ({"password": NEW_PASSWORD}, {"email": NEW}):
        refused = await client.patch(own, json=change, headers=admin)
        assert_problem(refused, 400, "UPDATE_USER_INVALID_PASSWORD")
        wrong = await client.patch(own, json={**change, "current_password": WRONG}, headers=admin)
        assert_problem(wrong, 400, "UPDATE_USER_INVALID_PASSWORD")
    await login(client, "root@example.com", PASSWORD)  # unchanged
    changed = await client.patch(
        own, json={"password": NEW_PASSWORD, "current_password": PASSWORD}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    await login(client, "root@example.com", NEW_PASSWORD)
    # Another account is administration, not self-service: no current password asked.
    ada = await register(client, OLD)
    other = await client.patch(f"/users/{ada['id']}", json={"email": NEW}, headers=admin)
    assert other.status_code == 200, other.text
    assert other.json()["email"] == NEW
    await wait_for_mail(app, OLD, "email address of your account was changed")


async def test_a_superuser_may_set_a_new_address_as_verified(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await register(client, "root@example.com")
    await make_superuser(app, "root@example.com")
    admin = bearer((await login(client, "root@example.com"))["access_token"])
    ada = await register(client, OLD)
    patched = await client.patch(
        f"/users/{ada['id']}", json={"email": NEW, "is_verified": True}, headers=admin
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["is_verified"] is True
    await wait_for_mail(app, OLD, "email address of your account was changed")
    await app.state.background.drain()
    assert [m for m in sent_mail(app) if m.to == NEW] == []  # nothing to confirm


def _plain(mail: EmailMessage) -> str:
    """The plain-text part (every mail also has an HTML alternative)."""
    part = mail.get_body(preferencelist=("plain",))
    assert part is not None, "the mail has no plain-text part"
    text: str = part.get_content()
    return text


def _token_from(mail: EmailMessage, path: str) -> str:
    """The token of the link to `path` in a parsed mail."""
    for line in _plain(mail).splitlines():
        link = urlsplit(line.strip())
        if link.scheme in ("http", "https") and link.path == path:
            token: str = parse_qs(link.query)["token"][0]
            return token
    raise AssertionError(f"no link to {path} in the mail")


async def test_the_change_notices_go_out_over_smtp(settings: CoreSettings) -> None:
    """The real delivery path (aiosmtpd on 127.0.0.1), mails parsed with the email package."""
    controller, catcher = start_smtp_server()
    try:
        url = f"smtp://127.0.0.1:{controller.port}"
        integrations = IntegrationsSettings(mail_url=url)  # type: ignore[arg-type]
        app = create_app(settings, module_settings={"integrations": integrations})
        async with app_client(app) as client:
            await register(client, OLD)
            tokens = await login(client, OLD)
            changed = await client.patch(
                "/users/me",
                json={"email": NEW, "current_password": PASSWORD},
                headers=bearer(tokens["access_token"]),
            )
            assert changed.status_code == 200, changed.text
            await eventually(lambda: len(catcher.messages) == 2)
            by_recipient = {m["To"]: m for m in catcher.messages}
            notice = by_recipient[OLD]
            assert notice["Subject"] == "The email address of your account was changed"
            assert NEW in _plain(notice)
            assert _token_from(by_recipient[NEW], "/auth/verify")

            undo = _token_from(notice, "/auth/undo-email-change")
            undone = await client.post(
                "/auth/undo-email-change", json={"token": undo, "password": NEW_PASSWORD}
            )
            assert undone.status_code == 200, undone.text
            await eventually(lambda: len(catcher.messages) == 3)
            told = catcher.messages[2]
            assert (told["To"], told["Subject"]) == (OLD, "Your password was changed")
            assert NEW_PASSWORD not in _plain(told)
    finally:
        controller.stop()
