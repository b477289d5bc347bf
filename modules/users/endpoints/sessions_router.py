"""/users/me/sessions: the caller's live login sessions; end one of them."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from modules.users.dependencies import CurrentLogin
from modules.users.endpoints.responses import problem_examples
from modules.users.exceptions import SessionNotFound
from modules.users.models import LoginSession
from modules.users.schemas import SessionRead
from modules.users.sessions_service import SessionServiceDep, as_utc

router = APIRouter()

_UNAUTHORIZED = problem_examples(401, "UNAUTHORIZED")


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
    name="users:sessions",
    summary="List my live sessions (the one making this call is flagged `current`)",
    response_model=list[SessionRead],
    responses=_UNAUTHORIZED,
)
async def list_sessions(login: CurrentLogin, sessions: SessionServiceDep) -> list[SessionRead]:
    return [_read(s, login.session_id) for s in await sessions.list_live(login.user.id)]


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
