"""What the users module's lifespan prepares once, read by its dependencies per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request

from app.database import Database
from app.events import EventHub
from app.logging import register_secret
from app.module import ModuleContext
from app.settings import CoreSettings, SettingsError
from modules.users.auth_cache import AuthCache
from modules.users.hashing import PasswordHasher, default_workers
from modules.users.passwords import PasswordPolicy
from modules.users.ratelimit import AuthLimiter
from modules.users.settings import UsersSettings
from modules.users.signing_keys import AccessTokenKeys, KeyFileError, load_access_token_keys
from modules.users.strength import StrengthChecker


@dataclass(frozen=True)
class UsersRuntime:
    settings: UsersSettings
    secret: str
    # What signs and verifies access tokens (the secret, or key files), and the JWKS.
    access_keys: AccessTokenKeys
    public_url: str
    policy: PasswordPolicy
    hasher: PasswordHasher
    strength: StrengthChecker
    limiter: AuthLimiter
    # The app's event hub (None in CLI commands: no app, nobody listening). Services do not
    # publish on it directly: `app.events.publish_after_commit` hands an event to the unit of
    # work, which delivers it here once its transaction has committed.
    events: EventHub | None = None
    # None: every request reads the database (AUTH_CACHE, modules/users/auth_cache.py).
    auth_cache: AuthCache | None = None
    # Every permission the loaded modules declare: a superuser's `scope` claim.
    permissions: frozenset[str] = frozenset()


@asynccontextmanager
async def open_runtime(
    core: CoreSettings,
    settings: UsersSettings,
    events: EventHub | None = None,
    app: FastAPI | None = None,
    database: Database | None = None,
) -> AsyncIterator[UsersRuntime]:
    """Open the hashing pool, the strength checker and the rate limiter; close them at exit.
    Used by the lifespan and by the create-superuser command (no app: no Redis circuit)."""
    secret = core.signing_key
    register_secret(secret)
    access_keys = open_access_keys(core, settings, secret)
    hasher = PasswordHasher(
        # Unset: the cores shared among the worker processes (WEB_CONCURRENCY).
        workers=settings.password_hash_workers or default_workers(core.workers),
        nice_increment=settings.password_hash_nice,
    )
    # zxcvbn in its own process(es): a costly check never holds the threads logins hash in.
    strength = StrengthChecker(
        workers=settings.password_strength_workers,
        timeout=settings.password_strength_timeout,
    )
    limiter = AuthLimiter.open(core.redis_url, settings, app)
    # Only with the app's database: its unit of work tells the cache about every commit.
    auth_cache = AuthCache.open(
        settings.auth_cache, core.redis_url, settings.auth_cache_ttl, database, app
    )
    try:
        yield UsersRuntime(
            settings=settings,
            secret=secret,
            access_keys=access_keys,
            public_url=core.effective_public_url,
            policy=PasswordPolicy(
                settings.password_min_length,
                settings.password_max_length,
                settings.password_min_score,
                run=strength.run,
            ),
            hasher=hasher,
            strength=strength,
            limiter=limiter,
            events=events,
            auth_cache=auth_cache,
            permissions=frozenset(getattr(app.state, "permissions", {}) if app else ()),
        )
    finally:
        if auth_cache is not None:
            await auth_cache.close(database)
        await limiter.close()
        strength.close()
        hasher.close()


def open_access_keys(core: CoreSettings, settings: UsersSettings, secret: str) -> AccessTokenKeys:
    """Read the key files (the settings checked them); outside production a missing private key
    is generated into DATA_DIR, like the secret key."""
    try:
        return load_access_token_keys(
            settings.access_token_algorithm,
            secret,
            settings.access_token_private_key_file,
            settings.access_token_previous_key_files,
            settings.access_token_next_key_file,
            development_data_dir=None if core.environment == "production" else core.data_dir,
        )
    except KeyFileError as exc:
        raise SettingsError(str(exc)) from None


@asynccontextmanager
async def lifespan(context: ModuleContext[UsersSettings]) -> AsyncIterator[None]:
    async with open_runtime(
        context.core, context.settings, context.events, context.app, context.database
    ) as runtime:
        context.app.state.users = runtime
        yield


def get_app_runtime(app: FastAPI) -> UsersRuntime:
    runtime: UsersRuntime = app.state.users
    return runtime


# async: a plain `def` dependency would hop to the thread pool on every request.
async def get_runtime(request: Request) -> UsersRuntime:
    return get_app_runtime(request.app)
