"""The in-process event hub: typed events, async handlers, failures kept out of the response.

A module publishes an event after the transaction that made it true has committed; other
modules subscribe in their `Module(subscriptions=[on(UserRegistered, handler)])` without
importing the publisher. Handlers run in the publisher's task, one after the other, so they see
the request id (every log line they write names it) and a test can observe them as soon as the
response is back. A handler that fails is logged and skipped: the response never changes. Slow
work belongs in `app.background` (submit it from the handler), not in the handler itself.

The identity events live here, in the kernel, beside the authentication slot (`app/auth.py`):
"who is the user" is kernel vocabulary, so a module may react to accounts without importing the
users module, and another authenticating module could publish the same events.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from fastapi import FastAPI
from loguru import logger
from pydantic import BaseModel, ConfigDict


class Event(BaseModel):
    """An immutable fact. `name` is the stable, dotted name used in logs and docs."""

    model_config = ConfigDict(frozen=True)

    name: ClassVar[str]


EventT = TypeVar("EventT", bound=Event)
Handler = Callable[[EventT], Awaitable[None]]


@dataclass(frozen=True)
class Subscription(Generic[EventT]):
    event: type[EventT]
    handler: Callable[[EventT], Awaitable[None]]


def on(event: type[EventT], handler: Callable[[EventT], Awaitable[None]]) -> Subscription[EventT]:
    """`on(UserRegistered, welcome)`: mypy checks that `welcome` takes a `UserRegistered`."""
    return Subscription(event, handler)


class EventHub:
    def __init__(self, subscriptions: Iterable[Subscription[Any]] = ()) -> None:
        self._handlers: dict[type[Event], list[Callable[[Any], Awaitable[None]]]] = defaultdict(
            list
        )
        for subscription in subscriptions:
            self.subscribe(subscription)

    def subscribe(self, subscription: Subscription[Any]) -> None:
        self._handlers[subscription.event].append(subscription.handler)

    async def publish(self, event: Event) -> None:
        for handler in self._handlers.get(type(event), ()):
            try:
                await handler(event)
            except Exception as exc:
                # The class name only: a message may carry SQL, an address or a token.
                # request_id is added by app/logging.py from the request's context.
                logger.error(
                    "event handler failed: {} on {} ({})",
                    getattr(handler, "__qualname__", repr(handler)),
                    event.name,
                    type(exc).__name__,
                )


async def publish(app: FastAPI | None, event: Event) -> None:
    """Publish on `app`'s hub; without an app (a CLI command) there is nobody to tell."""
    hub: EventHub | None = getattr(app.state, "events", None) if app is not None else None
    if hub is not None:
        await hub.publish(event)


# --- Identity events (published by the authenticating module, users) -------------------------


class UserRegistered(Event):
    name: ClassVar[str] = "user.registered"
    user_id: uuid.UUID
    email: str


class UserVerified(Event):
    name: ClassVar[str] = "user.verified"
    user_id: uuid.UUID


class UserPasswordChanged(Event):
    name: ClassVar[str] = "user.password_changed"
    user_id: uuid.UUID
    # "changed" (the user, with the current password), "reset" (with a mailed token) or "undo"
    # (the old address undid an email change and set a new password).
    how: str


class UserDeleted(Event):
    name: ClassVar[str] = "user.deleted"
    user_id: uuid.UUID


class SessionRevoked(Event):
    """Login sessions ended before their time (logout, reuse, password change, deactivation)."""

    name: ClassVar[str] = "session.revoked"
    user_id: uuid.UUID
    # One session, or None: every session of the user (a password change keeps the caller's).
    session_id: uuid.UUID | None
    reason: str
