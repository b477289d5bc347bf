"""docs/examples/verify_service.py, as the README shows it, against a real Gatehouse over HTTP:
it fetches the JWKS from the running server and verifies real access tokens with it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import httpx
import jwt
import pytest
from fastapi import FastAPI

from app.factory import create_app
from app.settings import CoreSettings
from tests.helpers import bearer, login, register
from tests.live_server import serve
from tests.modules.users.keyfiles import key_file, new_key, signing_with

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "verify_service.py"


def load_example(gatehouse_url: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import the example file as its users run it: GATEHOUSE_URL from the environment."""
    monkeypatch.setenv("GATEHOUSE_URL", gatehouse_url)
    spec = importlib.util.spec_from_file_location("verify_service_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
async def test_the_example_service_verifies_real_gatehouse_tokens(
    settings: CoreSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    algorithm: str,
) -> None:
    gatehouse = create_app(
        settings,
        module_settings={"users": signing_with(key_file(tmp_path, "k", algorithm), algorithm)},
    )
    with serve(gatehouse) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as gatehouse_client:
            account = await register(gatehouse_client, "ada@example.com")
            token = (await login(gatehouse_client, "ada@example.com"))["access_token"]

        example: FastAPI = load_example(base_url, monkeypatch).app
        transport = httpx.ASGITransport(app=example)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as service:
            answer = await service.get("/whoami", headers=bearer(token))
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"user_id": account["id"], "roles": [], "scope": []}

            # What it must refuse: another key under the real kid, a kid it cannot find, an
            # HS256 token (no kid), alg none under the real kid.
            claims = jwt.decode(token, options={"verify_signature": False})
            kid = jwt.get_unverified_header(token)["kid"]
            stranger = new_key(algorithm)
            forged = [
                jwt.encode(claims, stranger, algorithm=algorithm, headers={"kid": kid}),
                jwt.encode(claims, stranger, algorithm=algorithm, headers={"kid": "unknown"}),
                jwt.encode(claims, "a-secret-that-no-jwks-holds-0123456789abcdef", "HS256"),
                jwt.encode(claims, "", algorithm="none", headers={"kid": kid}),
            ]
            for bad in forged:
                refused = await service.get("/whoami", headers=bearer(bad))
                assert refused.status_code == 401, (bad, refused.text)
