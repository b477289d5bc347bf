"""The mail outbox: what to send, never the mail itself.

A row names a mail kind (`users.reset_password`) and what the module that renders it needs
(`ref`, e.g. a user id; `params`, small JSON). The mail, and any token in it, is built only
when it is sent: no token is ever at rest.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.database import Base

KIND_LENGTH = 64
REF_LENGTH = 64


class OutboxMail(Base):
    __tablename__ = "mail_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(length=KIND_LENGTH), nullable=False)
    ref: Mapped[str] = mapped_column(String(length=REF_LENGTH), nullable=False)
    # JSON object of strings, sorted keys (so equal params compare equal), or "{}".
    params: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, index=True
    )
    # Set while one process sends it; past this time another process may take it over
    # (the first one died mid-send).
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
