"""GET /users: the administrators' list of accounts, a page at a time, with filters.

Who may call it: holders of `users:read` (a role granting it, or superuser; checked live, see
permissions.py); every query is in users_repository.py.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.database import DbSession
from modules.users import users_repository
from modules.users.emails import canonical_email
from modules.users.endpoints.pagination import (
    CURSOR_LENGTH,
    LINK_HEADER_DOC,
    decode_cursor,
    encode_cursor,
    link_next_page,
)
from modules.users.endpoints.responses import problem_examples
from modules.users.exceptions import MissingPermission
from modules.users.permissions import UsersReader
from modules.users.schemas import UserAdminRead

router = APIRouter()

DEFAULT_PAGE = 50
MAX_PAGE = 100


@router.get(
    "",
    name="users:list_users",
    summary="List accounts, newest first (users:read)",
    description=(
        f"A page of at most `limit` accounts (default {DEFAULT_PAGE}, at most {MAX_PAGE}), "
        "newest first. `email` keeps the accounts whose address contains it (case does not "
        "matter: addresses are stored lower-case); `is_active`, `is_verified` and "
        "`is_superuser` keep those with that flag. The body is a bare array; when more "
        "follow, the `Link` header (RFC 8288) names the next page with the same filters: "
        '`Link: </users?limit=50&cursor=…>; rel="next"`. Follow it as given; the cursor is '
        "opaque. No `Link` header: this was the last page."
    ),
    response_model=list[UserAdminRead],
    responses={
        200: {"headers": LINK_HEADER_DOC},
        **problem_examples(401, "UNAUTHORIZED"),
        **problem_examples(403, MissingPermission),
    },
)
async def list_users(
    request: Request,
    response: Response,
    _: UsersReader,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Annotated[
        str | None,
        Query(max_length=CURSOR_LENGTH, description="From the `Link` header of a page."),
    ] = None,
    email: Annotated[
        str | None,
        Query(min_length=1, max_length=320, description="A part of the address."),
    ] = None,
    is_active: bool | None = None,
    is_verified: bool | None = None,
    is_superuser: bool | None = None,
) -> list[UserAdminRead]:
    after = decode_cursor(cursor) if cursor is not None else None
    where = users_repository.UserFilter(
        email_contains=canonical_email(email) if email is not None else None,
        is_active=is_active,
        is_verified=is_verified,
        is_superuser=is_superuser,
    )
    # One more than asked for tells whether another page follows.
    page = await users_repository.list_users(session, where, limit + 1, after)
    if len(page) > limit:
        page = page[:limit]
        last = page[-1]
        assert last.created_at is not None  # users_0005 dated every row
        query: dict[str, str | int | bool] = {"limit": limit}
        if email is not None:
            query["email"] = email
        flags = {"is_active": is_active, "is_verified": is_verified, "is_superuser": is_superuser}
        query.update({name: str(v).lower() for name, v in flags.items() if v is not None})
        query["cursor"] = encode_cursor(last.created_at, last.id)
        link_next_page(request, response, query)
    return [UserAdminRead.model_validate(user) for user in page]
