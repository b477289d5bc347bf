"""The links in mails work: over real sockets (uvicorn) with a real SMTP server (aiosmtpd), a
reset link opens an HTML form that sets the password, a verify link a page whose button
verifies, an undo link a form that takes the account back. Mails are parsed with the `email`
package: a plain-text part and an HTML part carrying the same link."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from loguru import logger

from app.factory import create_app
from app.settings import CoreSettings
from modules.integrations.settings import IntegrationsSettings
from modules.users.settings import UsersSettings
from tests.conftest import LogCapture
from tests.helpers import PASSWORD, bearer, free_port, login, register
from tests.live_server import serve
from tests.mail import wait_for_mail
from tests.upstreams import MailCatcher, app_client, eventually, start_smtp_server

NEW_PASSWORD = "a quiet meadow under winter stars"


class FormReader(HTMLParser):
    """The forms of a page: method, action and each input's name, type and value."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "form":
            self.forms.append({**attributes, "inputs": []})
        if tag == "input" and self.forms:
            self.forms[-1]["inputs"].append(attributes)


def read_page(response: httpx.Response) -> FormReader:
    assert response.headers["content-type"].startswith("text/html"), response.headers
    reader = FormReader()
    reader.feed(response.text)
    assert reader.scripts == 0
    return reader


def only_form(response: httpx.Response) -> dict[str, Any]:
    reader = read_page(response)
    assert len(reader.forms) == 1, response.text
    return reader.forms[0]


def fill(form: dict[str, Any], **values: str) -> dict[str, str]:
    """The form's hidden fields as the page gave them, plus the values a person types."""
    data = {i["name"]: i.get("value") or "" for i in form["inputs"] if i["type"] == "hidden"}
    typed = {i["name"] for i in form["inputs"] if i["type"] != "hidden"}
    assert typed == set(values), typed
    return {**data, **values}


def text(response: httpx.Response) -> str:
    """The page's words (tags dropped), for reading what it says."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.text))


def parts(mail: EmailMessage) -> tuple[str, str]:
    assert mail.get_content_type() == "multipart/alternative"
    plain = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    return plain.get_content(), html.get_content()


def link_in(mail: EmailMessage, base: str) -> str:
    """The one link of the mail: the same in the text part and in the HTML part's anchor."""
    plain, html = parts(mail)
    links: list[str] = re.findall(rf"{re.escape(base)}/\S+", plain)
    assert len(links) == 1, plain
    reader = FormReader()
    anchors: list[str] = []
    reader.handle_starttag = lambda tag, attrs: (  # type: ignore[method-assign]
        anchors.append(dict(attrs)["href"] or "") if tag == "a" else None
    )
    reader.feed(html)
    assert anchors == links, (anchors, links)
    return links[0]


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, MailCatcher]]:
    controller, catcher = start_smtp_server()
    yield controller, catcher
    controller.stop()


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def live_app(settings: CoreSettings, smtp: tuple[Controller, MailCatcher], port: int) -> FastAPI:
    # PUBLIC_URL unset: the links follow PORT, the address the app serves.
    served = settings.model_copy(update={"port": port, "public_url": None})
    integrations = IntegrationsSettings(mail_url=f"smtp://127.0.0.1:{smtp[0].port}")  # type: ignore[arg-type]
    return create_app(served, module_settings={"integrations": integrations})


@pytest.fixture
async def live(live_app: FastAPI, port: int) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    with serve(live_app, port=port) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            yield base, client


@pytest.fixture
def captured(live_app: FastAPI) -> Iterator[LogCapture]:
    capture = LogCapture()
    sink = logger.add(capture.sink, level="DEBUG", format="{message}")
    yield capture
    logger.remove(sink)


async def mail_about(catcher: MailCatcher, to: str, subject: str) -> EmailMessage:
    def found() -> list[EmailMessage]:
        return [m for m in catcher.messages if m["To"] == to and subject in m["Subject"]]

    await eventually(lambda: bool(found()), timeout=30)
    return found()[-1]


async def test_the_mailed_reset_link_opens_a_form_that_sets_the_password(
    live: tuple[str, httpx.AsyncClient],
    smtp: tuple[Controller, MailCatcher],
    port: int,
    captured: LogCapture,
) -> None:
    base, client = live
    assert base == f"http://127.0.0.1:{port}"
    await register(client, "ada@example.com")
    session = await login(client, "ada@example.com")
    assert (
        await client.post("/auth/forgot-password", json={"email": "ada@example.com"})
    ).status_code == 202
    link = link_in(await mail_about(smtp[1], "ada@example.com", "Reset your password"), base)
    assert link.startswith(f"{base}/auth/reset-password?token=")
    token = link.split("token=", 1)[1]

    page = await client.get(link)
    assert page.status_code == 200
    # Same origin only, no script at all; the token in the URL goes nowhere else.
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "form-action 'self'" in csp and "script-src" not in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    form = only_form(page)
    assert form["method"] == "post" and form["action"] == "/auth/reset-password/form"

    # Two different passwords: the form again, the problem in words, nothing changed.
    differ = await client.post(
        form["action"], data=fill(form, password=NEW_PASSWORD, password_again="something else")
    )
    assert differ.status_code == 400
    assert "The two passwords differ" in text(differ)
    assert "RESET_PASSWORD_INVALID_PASSWORD" in text(differ)
    form = only_form(differ)
    weak = await client.post(
        form["action"], data=fill(form, password="short", password_again="short")
    )
    assert weak.status_code == 400 and "at least 8 characters" in text(weak)

    done = await client.post(
        form["action"], data=fill(form, password=NEW_PASSWORD, password_again=NEW_PASSWORD)
    )
    assert done.status_code == 200, done.text
    assert "Your password was changed" in text(done) and not read_page(done).forms
    await login(client, "ada@example.com", NEW_PASSWORD)
    old = await client.post(
        "/auth/jwt/login", data={"username": "ada@example.com", "password": PASSWORD}
    )
    assert old.status_code == 400
    # The reset ended the session from before it.
    me = await client.get("/users/me", headers=bearer(session["access_token"]))
    assert me.status_code == 401

    # Used once: the link and its form now show the problem, as readable text, and no form.
    again = await client.get(link)
    assert again.status_code == 400 and not read_page(again).forms
    assert "The reset token is invalid or expired." in text(again)
    assert "RESET_PASSWORD_BAD_TOKEN" in text(again)
    assert again.headers["x-request-id"] in text(again)
    replay = await client.post(
        form["action"], data={"token": token, "password": PASSWORD, "password_again": PASSWORD}
    )
    assert replay.status_code == 400 and "RESET_PASSWORD_BAD_TOKEN" in text(replay)
    assert token not in captured.text


async def test_the_mailed_verify_link_confirms_with_a_button(
    live: tuple[str, httpx.AsyncClient], smtp: tuple[Controller, MailCatcher]
) -> None:
    base, client = live
    await register(client, "bob@example.com")
    tokens = await login(client, "bob@example.com")
    asked = await client.post("/auth/request-verify-token", json={"email": "bob@example.com"})
    assert asked.status_code == 202
    link = link_in(await mail_about(smtp[1], "bob@example.com", "Confirm"), base)
    assert link.startswith(f"{base}/auth/verify?token=")

    async def verified() -> bool:
        me = await client.get("/users/me", headers=bearer(tokens["access_token"]))
        return bool(me.json()["is_verified"])

    page = await client.get(link)
    assert page.status_code == 200 and "bob@example.com" in text(page)
    # Opening the link (as a mail scanner prefetching it would) changes nothing.
    assert not await verified()
    form = only_form(page)
    assert form["method"] == "post" and form["action"] == "/auth/verify/form"
    done = await client.post(form["action"], data=fill(form))
    assert done.status_code == 200 and "is confirmed" in text(done)
    assert await verified()
    again = await client.get(link)
    assert again.status_code == 200 and "confirmed already" in text(again)
    bogus = await client.get("/auth/verify?token=not-a-token")
    assert bogus.status_code == 400 and "VERIFY_USER_BAD_TOKEN" in text(bogus)


async def test_the_undo_link_of_an_email_change_opens_a_form_that_takes_the_account_back(
    live: tuple[str, httpx.AsyncClient], smtp: tuple[Controller, MailCatcher]
) -> None:
    base, client = live
    await register(client, "cy@example.com")
    tokens = await login(client, "cy@example.com")
    changed = await client.patch(
        "/users/me",
        json={"email": "thief@example.com", "current_password": PASSWORD},
        headers=bearer(tokens["access_token"]),
    )
    assert changed.status_code == 200, changed.text
    mail = await mail_about(smtp[1], "cy@example.com", "email address of your account was changed")
    link = link_in(mail, base)
    assert link.startswith(f"{base}/auth/undo-email-change?token=")
    form = only_form(await client.get(link))
    done = await client.post(
        form["action"], data=fill(form, password=NEW_PASSWORD, password_again=NEW_PASSWORD)
    )
    assert done.status_code == 200 and "cy@example.com" in text(done)
    await login(client, "cy@example.com", NEW_PASSWORD)


async def test_link_templates_point_the_mails_at_a_front_end(settings: CoreSettings) -> None:
    users = UsersSettings(
        reset_password_url_template="https://app.example.com/reset#token={token}",
        verify_url_template="https://app.example.com/verify?t={token}&from=mail",
    )
    app = create_app(settings, module_settings={"users": users})
    async with app_client(app) as client:
        await register(client, "dee@example.com")
        await client.post("/auth/request-verify-token", json={"email": "dee@example.com"})
        mail = await wait_for_mail(app, "dee@example.com", "Confirm")
        link = re.search(r"https://app\.example\.com/verify\?t=([^&\s]+)&from=mail", mail.body)
        assert link is not None, mail.body
        verified = await client.post("/auth/verify", json={"token": link.group(1)})
        assert verified.status_code == 200 and verified.json()["is_verified"]
        await client.post("/auth/forgot-password", json={"email": "dee@example.com"})
        reset = await wait_for_mail(app, "dee@example.com", "Reset")
        assert "https://app.example.com/reset#token=" in reset.body
        assert f"{settings.effective_public_url}/auth" not in reset.body


@pytest.mark.parametrize("template", ["https://app.example.com/reset", "/reset?t={token}"])
def test_a_link_template_without_token_or_host_is_refused(template: str) -> None:
    with pytest.raises(ValueError, match=r"reset_password_url_template"):
        UsersSettings(reset_password_url_template=template)
