"""The peer: stock fastapi-users 15 as its documentation sets it up (JWT strategy, bearer
transport, SQLAlchemy adapter), plus the same trivial `/health/live` as the ceiling.

Only what the benchmark needs is configurable, by environment (set by servers.py):
- BENCH_DATABASE_URL: the same kind of database Gatehouse gets (SQLite file or PostgreSQL);
- BENCH_SECRET: signs the JWTs;
- BENCH_ARGON2: "memory_cost,time_cost,parallelism", read from a hash Gatehouse made, so both
  sides pay for the same argon2id (fastapi-users' own default is argon2-cffi's defaults too).

`python -m scripts.bench.peer_app create-tables` creates the table before the workers start
(the docs do it in the lifespan, which races when several workers start at once).
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncGenerator

from fastapi import Depends, FastAPI
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, schemas
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, JWTStrategy
from fastapi_users.db import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
from fastapi_users.password import PasswordHelper
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "sqlite+aiosqlite:///./peer.db")
SECRET = os.environ.get("BENCH_SECRET", "a peer secret for a local benchmark only")
MEMORY_COST, TIME_COST, PARALLELISM = (
    int(part) for part in os.environ.get("BENCH_ARGON2", "65536,3,4").split(",")
)


class Base(DeclarativeBase):
    pass


class User(SQLAlchemyBaseUserTableUUID, Base):
    pass


engine = create_async_engine(DATABASE_URL)
async_session_maker = async_sessionmaker(engine, expire_on_commit=False)


async def get_async_session() -> AsyncGenerator[AsyncSession, None]:
    async with async_session_maker() as session:
        yield session


async def get_user_db(
    session: AsyncSession = Depends(get_async_session),
) -> AsyncGenerator[SQLAlchemyUserDatabase[User, uuid.UUID], None]:
    yield SQLAlchemyUserDatabase(session, User)


password_helper = PasswordHelper(
    PasswordHash(
        (Argon2Hasher(memory_cost=MEMORY_COST, time_cost=TIME_COST, parallelism=PARALLELISM),)
    )
)


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
    reset_password_token_secret = SECRET
    verification_token_secret = SECRET


async def get_user_manager(
    user_db: SQLAlchemyUserDatabase[User, uuid.UUID] = Depends(get_user_db),
) -> AsyncGenerator[UserManager, None]:
    yield UserManager(user_db, password_helper)


bearer_transport = BearerTransport(tokenUrl="auth/jwt/login")


def get_jwt_strategy() -> JWTStrategy[User, uuid.UUID]:
    return JWTStrategy(secret=SECRET, lifetime_seconds=3600)


auth_backend = AuthenticationBackend(
    name="jwt", transport=bearer_transport, get_strategy=get_jwt_strategy
)
fastapi_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [auth_backend])


class UserRead(schemas.BaseUser[uuid.UUID]):
    pass


class UserCreate(schemas.BaseUserCreate):
    pass


class UserUpdate(schemas.BaseUserUpdate):
    pass


app = FastAPI()
app.include_router(fastapi_users.get_auth_router(auth_backend), prefix="/auth/jwt", tags=["auth"])
app.include_router(
    fastapi_users.get_register_router(UserRead, UserCreate), prefix="/auth", tags=["auth"]
)
app.include_router(
    fastapi_users.get_users_router(UserRead, UserUpdate), prefix="/users", tags=["users"]
)


@app.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


async def create_tables() -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await engine.dispose()


if __name__ == "__main__":
    if sys.argv[1:] != ["create-tables"]:
        sys.exit("usage: python -m scripts.bench.peer_app create-tables")
    asyncio.run(create_tables())
