"""Picking a token out of a mail the app sent (the console mailer keeps an outbox)."""

from __future__ import annotations

import re
from urllib.parse import unquote

from fastapi import FastAPI

_TOKEN = re.compile(r"[?&]token=([^\s&]+)")


async def last_mailed_token(app: FastAPI, to: str) -> str:
    sender = app.state.integrations.mail
    await sender.drain()  # mails go out after the answer; wait for them
    for message in reversed(sender.mailer.outbox):
        if message.to == to:
            match = _TOKEN.search(message.body)
            assert match, message.body
            return unquote(match.group(1))
    raise AssertionError(f"no mail to {to}")
