"""The one place tests read sent mail (the console mailer's outbox). When the mailer changes,
only this file changes."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import FastAPI


def sent_mail(app: FastAPI) -> list[Any]:
    """Every mail sent so far (objects with `to`, `subject`, `body`)."""
    return list(app.state.integrations.mail.mailer.outbox)


async def wait_for_mail(app: FastAPI, to: str, subject: str, timeout: float = 10.0) -> Any:
    """The newest mail to `to` whose subject contains `subject`, once one has been sent
    (mail goes out after the API has answered)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        for message in reversed(sent_mail(app)):
            if message.to == to and subject in message.subject:
                return message
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no mail to {to} about {subject!r} within {timeout} s")
        await asyncio.sleep(0.02)


def token_in(message: Any) -> str:
    """The token of the link in a mail (`...?token=...`)."""
    match = re.search(r"[?&]token=([A-Za-z0-9._\-%]+)", message.body)
    assert match, "the mail carries no token link"
    from urllib.parse import unquote

    return unquote(match.group(1))


def plain_text(mail: Any) -> str:
    """The plain-text part of a mail parsed with the `email` package (every mail of the users
    module also carries an HTML alternative)."""
    part = mail.get_body(preferencelist=("plain",))
    assert part is not None, "the mail has no plain-text part"
    text: str = part.get_content()
    return text
