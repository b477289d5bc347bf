"""`python -m app create-superuser --email E`: the password is asked without echo on a
terminal, and read from the first line of standard input otherwise."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from fastapi_users import exceptions

from app.database import Database, unit_of_work
from app.module import Command
from app.settings import CoreSettings
from modules.users.manager import UserManager
from modules.users.models import User
from modules.users.runtime import open_runtime
from modules.users.schemas import SuperuserCreate
from modules.users.settings import UsersSettings
from modules.users.users_repository import UserDatabase


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--email", required=True)


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != first:
            raise ValueError("the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


async def _create(email: str, password: str, core: CoreSettings, settings: UsersSettings) -> User:
    database = Database(core.database_url)
    try:
        # Its own unit of work: committed when the user is created, rolled back otherwise.
        async with open_runtime(core, settings) as runtime, unit_of_work(database) as session:
            manager = UserManager(UserDatabase(session), runtime)
            return await manager.create(SuperuserCreate(email=email, password=password))  # type: ignore[type-var]
    finally:
        await database.dispose()


def _run(args: argparse.Namespace, core: CoreSettings, settings: UsersSettings) -> int:
    try:
        password = _read_password()
        user = asyncio.run(_create(args.email, password, core, settings))
    except ValueError as exc:  # includes pydantic's invalid email
        print(f"create-superuser: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    except exceptions.UserAlreadyExists:
        print(f"create-superuser: a user with email {args.email} already exists", file=sys.stderr)
        return 1
    except exceptions.InvalidPasswordException as exc:
        print(f"create-superuser: {exc.reason}", file=sys.stderr)
        return 1
    print(f"superuser created: {user.id}", file=sys.stderr)
    return 0


create_superuser = Command[UsersSettings](
    help="create a superuser account", configure=_configure, run=_run
)
