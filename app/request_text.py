"""Text no route accepts: lone UTF-16 surrogates and control characters, refused before any route
sees the request (a 422 problem from the middleware, `app/middleware.py`).

Why here and not per field: a lone surrogate (`"\\ud800"` is valid JSON) makes argon2 and PyJWT
raise `UnicodeEncodeError` (a 500), and PostgreSQL refuses a NUL in text
(`CharacterNotInRepertoireError`, a 500). Every text field of every module is exposed to both, so
the check runs once per request on exactly what the framework will decode: the JSON body (the
same `json.loads`), a form body (Starlette's own parsers) and the query string. TAB, LF and CR are
allowed (multi-line text is legitimate); every other C0 control, DEL and the C1 controls are not.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Iterator
from email.message import Message
from typing import Any

from starlette.datastructures import FormData, Headers, QueryParams, UploadFile
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser

_UNACCEPTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")

MESSAGE = "Text may not contain control characters or unpaired surrogates."
ERROR_TYPE = "string_unacceptable_character"


def is_unacceptable(value: str) -> bool:
    return _UNACCEPTABLE.search(value) is not None


def _json_strings(document: Any) -> Iterator[tuple[list[str], str]]:
    """Every string of a JSON document (keys too) with where it is; iterative, so a deeply
    nested document costs no recursion."""
    stack: list[tuple[list[str], Any]] = [([], document)]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, str):
            yield loc, value
        elif isinstance(value, dict):
            for key, item in value.items():
                yield [*loc, key], key
                stack.append(([*loc, key], item))
        elif isinstance(value, list):
            stack.extend(([*loc, str(index)], item) for index, item in enumerate(value))


def _media_type(content_type: str | None) -> tuple[str, str]:
    message = Message()
    message["content-type"] = content_type or ""
    return message.get_content_maintype(), message.get_content_subtype()


async def _form(headers: Headers, body: bytes, multipart: bool) -> FormData | None:
    async def stream() -> AsyncGenerator[bytes, None]:
        yield body
        yield b""

    parser = MultiPartParser(headers, stream()) if multipart else FormParser(headers, stream())
    try:
        return await parser.parse()
    except (MultiPartException, ValueError):
        return None  # not parseable: the route's own parsing answers


async def _body_strings(headers: Headers, body: bytes) -> Iterator[tuple[list[str], str]]:
    content_type = headers.get("content-type")
    main, sub = _media_type(content_type)
    # The same rule as FastAPI's: no content type, or application/json or …+json, is JSON.
    if not content_type or (main == "application" and (sub == "json" or sub.endswith("+json"))):
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            return iter(())  # not JSON: the route's own parsing answers
        return _json_strings(document)
    multipart = (main, sub) == ("multipart", "form-data")
    if multipart or (main, sub) == ("application", "x-www-form-urlencoded"):
        form = await _form(headers, body, multipart)
        if form is None:
            return iter(())
        found = []
        for key, value in form.multi_items():
            found.append((["body", key], key))
            if isinstance(value, UploadFile):
                await value.close()
            else:
                found.append((["body", key], value))
        return iter(found)
    return iter(())


async def unacceptable_text(
    headers: Headers, body: bytes, query_string: bytes
) -> list[dict[str, Any]]:
    """Validation errors (`loc`, `msg`, `type`, as for any 422) for every refused string."""
    errors: list[dict[str, Any]] = []
    for key, value in QueryParams(query_string).multi_items():
        for text in (key, value):
            if is_unacceptable(text):
                errors.append({"loc": ["query", key], "msg": MESSAGE, "type": ERROR_TYPE})
    if body:
        for loc, text in await _body_strings(headers, body):
            if is_unacceptable(text):
                where = loc if loc[:1] == ["body"] else ["body", *loc]
                errors.append({"loc": where, "msg": MESSAGE, "type": ERROR_TYPE})
    # Never echo the text (it may be a password); a location may itself be a bad key.
    for error in errors:
        error["loc"] = [_UNACCEPTABLE.sub("?", str(part)) for part in error["loc"]]
    return errors
