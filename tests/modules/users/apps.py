"""An app with its own users-module settings, and HTTP clients that call it from an address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from pydantic_settings import BaseSettings

from app.factory import create_app
from app.settings import CoreSettings
from modules.users.settings import UsersSettings


@asynccontextmanager
async def running_app(
    settings: CoreSettings, users: UsersSettings, **other_modules: BaseSettings
) -> AsyncIterator[FastAPI]:
    app = create_app(settings, module_settings={"users": users, **other_modules})
    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def client_for(app: FastAPI, address: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
