"""/users/me/sessions: the caller's live login sessions, a page at a time; end one of them."""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response, status

from modules.users.dependencies import CurrentLogin
from modules.users.endpoints.pagination import decode_cursor, encode_cursor
from modules.users.endpoints.responses import problem_examples
from modules.users.exceptions import SessionNotFound
from modules.users.models import LoginSession
from modules.users.schemas import SessionRead
from modules.users.sessions_service import SessionServiceDep, as_utc

router = APIRouter()

_UNAUTHORIZED = problem_examples(401, "UNAUTHORIZED")

# A page is at most as long as the default cap: with default settings one page holds them all.
DEFAULT_PAGE = 50
MAX_PAGE = 100

# A cursor is the (login time in µs, id) of the last session of the page before
# (endpoints/pagination.py): opaque to clients, only ever a position in the caller's own list.


def _cursor_of(login: LoginSession) -> str:
    return encode_cursor(login.created_at, login.id)


def _read(login: LoginSession, current: uuid.UUID) -> SessionRead:
    return SessionRead(
        id=login.id,
        created_at=as_utc(login.created_at),
        last_used_at=as_utc(login.last_used_at),
        expires_at=as_utc(login.expires_at),
        user_agent=login.user_agent,
        client_address=login.client_address,
        current=login.id == current,
    )


@router.get(
    "/me/sessions",
    name="users:list_sessions",
    summary="List my live sessions, newest login first (the calling one is flagged `current`)",
    description=(
        f"A page of at most `limit` sessions (default {DEFAULT_PAGE}, at most {MAX_PAGE}). "
        "The body is always a bare array; when more follow, the `Link` header (RFC 8288) "
        'names the next page: `Link: </users/me/sessions?limit=50&cursor=…>; rel="next"`. '
        "Follow it as given; the cursor is opaque. No `Link` header: this was the last page."
    ),
    response_model=list[SessionRead],
    responses={
        200: {
            "headers": {
                "Link": {
                    "description": 'The next page, `<url>; rel="next"`; absent on the last.',
                    "schema": {"type": "string"},
                }
            }
        },
        **_UNAUTHORIZED,
    },
)
async def list_sessions(
    request: Request,
    response: Response,
    login: CurrentLogin,
    sessions: SessionServiceDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Annotated[
        str | None, Query(max_length=64, description="From the `Link` header of a page.")
    ] = None,
) -> list[SessionRead]:
    after = decode_cursor(cursor) if cursor is not None else None
    # One more than asked for tells whether another page follows.
    page = await sessions.list_live(login.user.id, limit + 1, after)
    if len(page) > limit:
        page = page[:limit]
        query = urlencode({"limit": limit, "cursor": _cursor_of(page[-1])})
        # A relative reference (RFC 8288 §3.1): never built from the Host header.
        response.headers["Link"] = f'<{request.url.path}?{query}>; rel="next"'
    return [_read(s, login.session_id) for s in page]


@router.delete(
    "/me/sessions/{session_id}",
    name="users:end_session",
    summary="End one of my sessions (e.g. a lost device); ending the current one logs out",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**_UNAUTHORIZED, **problem_examples(404, SessionNotFound)},
)
async def end_session(
    session_id: uuid.UUID, login: CurrentLogin, sessions: SessionServiceDep
) -> None:
    # Another user's session id is answered exactly like an unknown one.
    if not await sessions.end(session_id, login.user.id, reason="ended from the session list"):
        raise SessionNotFound
