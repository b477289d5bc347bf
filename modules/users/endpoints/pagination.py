"""Keyset pagination for lists sorted by (a time, an id): opaque cursors and the `Link` header.

A cursor is the (time in µs, id) of the last item of the page before, packed and
base64url-encoded: opaque to clients, and only ever a position in a list. The next page is
named by a relative reference (RFC 8288 §3.1), never built from the `Host` header.
"""

from __future__ import annotations

import base64
import binascii
import struct
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR = struct.Struct(">q16s")
CURSOR_LENGTH = len(base64.urlsafe_b64encode(b"\0" * _CURSOR.size).rstrip(b"="))

LINK_HEADER_DOC = {
    "Link": {
        "description": 'The next page, `<url>; rel="next"`; absent on the last.',
        "schema": {"type": "string"},
    }
}


def as_utc(moment: datetime) -> datetime:
    # SQLite hands timestamps back without a zone; they are stored in UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def encode_cursor(moment: datetime, item_id: uuid.UUID) -> str:
    micros = (as_utc(moment) - _EPOCH) // timedelta(microseconds=1)
    return base64.urlsafe_b64encode(_CURSOR.pack(micros, item_id.bytes)).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position a cursor stands for; a 422 on `query.cursor` like any invalid parameter."""
    try:
        if len(cursor) != CURSOR_LENGTH:
            raise ValueError
        micros, raw_id = _CURSOR.unpack(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return _EPOCH + timedelta(microseconds=micros), uuid.UUID(bytes=raw_id)
    except (ValueError, binascii.Error, struct.error, OverflowError):
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "cursor"),
                    "msg": "Not a cursor this list handed out.",
                    "type": "value_error",
                }
            ]
        ) from None


def link_next_page(
    request: Request, response: Response, query: Mapping[str, str | int | bool]
) -> None:
    """`Link: <path?query>; rel="next"` on `response`: the same path, the given query."""
    response.headers["Link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
