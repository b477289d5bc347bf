"""`python -m app create-superuser --email E`: the password is asked twice without echo on a
terminal, and read from the first line of standard input otherwise.

Every failure is one line on standard error naming what to fix (the field, the pending
migrations), never a traceback; log lines have the server's format (LOG_FORMAT).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from fastapi_users import exceptions
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from app.database import Database, unit_of_work
from app.logging import setup_logging
from app.module import Command
from app.settings import CoreSettings
from modules.users.manager import UserManager
from modules.users.models import User
from modules.users.runtime import open_runtime
from modules.users.schemas import SuperuserCreate
from modules.users.settings import UsersSettings
from modules.users.users_repository import UserDatabase

DESCRIPTION = """\
Create an account with superuser rights (GET /users, GET/PATCH/DELETE /users/{id}),
verified and active.

The password is never an argument (it would land in the shell history and the process list):
on a terminal it is asked twice, without echo; otherwise the first line of standard input is
the password, e.g.  printf '%s\\n' "$PASSWORD" | python -m app create-superuser --email E
It must pass the same rules as a registration (PASSWORD_MIN_LENGTH, PASSWORD_MIN_SCORE, ...).

Needs a migrated database: run `python -m app migrate` (or `make migrate`) first. DATABASE_URL
and the other settings come from the environment and .env, as for the server.
"""

# What a database says when a table or column the code expects is not there yet.
_NOT_MIGRATED = ("no such table", "no such column", "has no column", "does not exist")


class CommandFailed(Exception):
    """One line for the user; the command exits 1."""


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--email",
        required=True,
        metavar="ADDRESS",
        help="the account's email address, its login name (required; no default)",
    )


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != first:
            raise CommandFailed("password: the two passwords differ")
        return first
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise CommandFailed("password: standard input gave none (its first line is the password)")
    return line


def _field_errors(exc: ValidationError) -> str:
    """pydantic's report as one line, each error named by the option it came from."""
    names = {"email": "--email", "password": "password"}
    parts = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"])
        parts.append(f"{names.get(field, field)}: {error['msg']}")
    return "; ".join(parts)


async def _create(email: str, password: str, core: CoreSettings, settings: UsersSettings) -> User:
    database = Database(core.database_url)
    try:
        # Its own unit of work: committed when the user is created, rolled back otherwise.
        async with open_runtime(core, settings) as runtime, unit_of_work(database) as session:
            manager = UserManager(UserDatabase(session), runtime)
            return await manager.create(SuperuserCreate(email=email, password=password))  # type: ignore[type-var]
    finally:
        await database.dispose()


def _create_superuser(email: str, core: CoreSettings, settings: UsersSettings) -> User:
    try:
        SuperuserCreate.model_validate({"email": email, "password": "x" * 8})
    except ValidationError as exc:  # the address, before a password is asked for
        raise CommandFailed(_field_errors(exc)) from None
    password = _read_password()
    try:
        return asyncio.run(_create(email, password, core, settings))
    except ValidationError as exc:
        raise CommandFailed(_field_errors(exc)) from None
    except exceptions.UserAlreadyExists:
        raise CommandFailed(f"--email: a user with email {email} already exists") from None
    except exceptions.InvalidPasswordException as exc:
        raise CommandFailed(f"password: {exc.reason}") from None
    except DBAPIError as exc:
        message = str(exc.orig).lower()
        if any(sign in message for sign in _NOT_MIGRATED):
            raise CommandFailed(
                "the database is not migrated (migrations pending): run `python -m app "
                "migrate` (or `make migrate`) first"
            ) from None
        if exc.connection_invalidated or "connect" in message:
            raise CommandFailed(
                "cannot reach the database (DATABASE_URL): is it running?"
            ) from None
        raise


def _run(args: argparse.Namespace, core: CoreSettings, settings: UsersSettings) -> int:
    setup_logging(core)  # the server's log format (LOG_FORMAT), redaction included
    try:
        user = _create_superuser(args.email, core, settings)
    except CommandFailed as exc:
        print(f"gatehouse: create-superuser: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, EOFError):
        print("gatehouse: create-superuser: cancelled", file=sys.stderr)
        return 1
    print(f"superuser created: {user.email} ({user.id})", file=sys.stderr)
    return 0


create_superuser = Command[UsersSettings](
    help="create a superuser account (password from the terminal or stdin)",
    configure=_configure,
    run=_run,
)
