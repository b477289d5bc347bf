"""X-Forwarded-For / Forwarded are believed only from TRUSTED_PROXIES (the address a session
records and the rate limit counts by)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from app.factory import create_app
from app.settings import CoreSettings
from tests.helpers import bearer, register


async def _recorded_address(
    app: FastAPI, peer: str, headers: dict[str, str] | list[tuple[str, str]]
) -> str:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(peer, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await register(client, "ada@example.com")
            response = await client.post(
                "/auth/jwt/login",
                data={"username": "ada@example.com", "password": "correct horse battery staple"},
                headers=headers,
            )
            assert response.status_code == 200, response.text
            token = response.json()["access_token"]
            sessions = await client.get("/users/me/sessions", headers=bearer(token))
            address: str = sessions.json()[0]["client_address"]
            return address


XFF = "X-Forwarded-For"
FWD = "Forwarded"


@pytest.mark.parametrize(
    ("trusted", "peer", "headers", "expected"),
    [
        # No trusted proxy: the header is the client's word, not believed.
        ([], "10.0.0.5", {"X-Forwarded-For": "203.0.113.7"}, "10.0.0.5"),
        # From a trusted proxy: the nearest address that is not a trusted proxy.
        (
            ["10.0.0.0/8"],
            "10.0.0.5",
            {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"},
            "203.0.113.7",
        ),
        (["10.0.0.0/8"], "10.0.0.5", {"X-Forwarded-For": "203.0.113.7, 10.0.0.9"}, "203.0.113.7"),
        # A peer that is not trusted cannot pass one off.
        (["10.0.0.0/8"], "192.0.2.1", {"X-Forwarded-For": "203.0.113.7"}, "192.0.2.1"),
    ],
)
async def test_client_address(
    settings: CoreSettings,
    trusted: list[str],
    peer: str,
    headers: dict[str, str],
    expected: str,
) -> None:
    app = create_app(settings.model_copy(update={"trusted_proxies": trusted}))
    assert await _recorded_address(app, peer, headers) == expected


@pytest.mark.parametrize(
    ("header_setting", "peer", "headers", "expected"),
    [
        # The default: the proxy appends X-Forwarded-For; a Forwarded the client sent itself
        # is not believed (it used to win over X-Forwarded-For).
        (XFF, "10.0.0.5", {FWD: "for=198.51.100.99", XFF: "203.0.113.7"}, "203.0.113.7"),
        (FWD, "10.0.0.5", {FWD: 'for="203.0.113.8";proto=https', XFF: "1.2.3.4"}, "203.0.113.8"),
        # Ports are dropped: a new source port is not a new client.
        (XFF, "10.0.0.5", {XFF: "203.0.113.7:4711"}, "203.0.113.7"),
        (FWD, "10.0.0.5", {FWD: 'for="203.0.113.8:4711"'}, "203.0.113.8"),
        (FWD, "10.0.0.5", {FWD: 'for="[2001:DB8::17]:4711", for=10.0.0.9'}, "2001:db8::17"),
        (XFF, "10.0.0.5", {XFF: "[2001:db8:0:0::17]:80"}, "2001:db8::17"),
        # IPv4-mapped IPv6 is the IPv4 address, from a proxy or as the peer itself.
        (XFF, "10.0.0.5", {XFF: "::ffff:203.0.113.7"}, "203.0.113.7"),
        (XFF, "::ffff:10.0.0.5", {XFF: "203.0.113.7"}, "203.0.113.7"),
        (XFF, "::ffff:192.0.2.1", {}, "192.0.2.1"),
        # Several header lines are one list; the nearest untrusted hop wins.
        (XFF, "10.0.0.5", [(XFF, "198.51.100.1"), (XFF, "203.0.113.7, 10.0.0.6")], "203.0.113.7"),
        # A hop the proxy could not name: the last address we can read.
        (FWD, "10.0.0.5", {FWD: "for=unknown, for=10.0.0.9"}, "10.0.0.9"),
    ],
)
async def test_client_address_spellings_and_the_forwarded_header_setting(
    settings: CoreSettings,
    header_setting: str,
    peer: str,
    headers: dict[str, str] | list[tuple[str, str]],
    expected: str,
) -> None:
    app = create_app(
        settings.model_copy(
            update={"trusted_proxies": ["10.0.0.0/8"], "forwarded_header": header_setting}
        )
    )
    assert await _recorded_address(app, peer, headers) == expected


async def test_one_ipv6_64_and_mapped_spellings_are_one_rate_limit_bucket(
    settings: CoreSettings,
) -> None:
    """Failures from many addresses of one /64 (and v4-mapped spellings of one IPv4 address)
    count against one address limit."""
    from modules.users.settings import UsersSettings
    from tests.modules.users.apps import client_for, running_app

    proxied = settings.model_copy(update={"trusted_proxies": ["10.0.0.0/8"]})
    users = UsersSettings(login_max_failures=2)  # per address: 2 x 4 = 8
    spellings = [
        "2001:db8:1:2::1",
        "[2001:db8:1:2::ffff]:4711",
        "2001:DB8:1:2:0:0:0:3",
        "2001:db8:1:2:aaaa:bbbb:cccc:dddd",
        "[2001:db8:1:2::5]",
        "2001:db8:1:2::6",
        "2001:db8:1:2::7",
        "2001:db8:1:2::8",
    ]
    async with running_app(proxied, users) as app, client_for(app, "10.0.0.5") as proxy:
        for n, spelling in enumerate(spellings):
            response = await proxy.post(
                "/auth/jwt/login",
                data={"username": f"user{n}@example.com", "password": "wrong password"},
                headers={"X-Forwarded-For": spelling},
            )
            assert response.status_code == 400, (spelling, response.text)
        refused = await proxy.post(
            "/auth/jwt/login",
            data={"username": "other@example.com", "password": "wrong password"},
            headers={"X-Forwarded-For": "2001:db8:1:2:ffff::1"},
        )
        assert refused.status_code == 429
        # Another /64 is another client.
        other = await proxy.post(
            "/auth/jwt/login",
            data={"username": "other@example.com", "password": "wrong password"},
            headers={"X-Forwarded-For": "2001:db8:1:3::1"},
        )
        assert other.status_code == 400
        for n, spelling in enumerate(["203.0.113.7", "::ffff:203.0.113.7", "203.0.113.7:1"] * 3):
            response = await proxy.post(
                "/auth/jwt/login",
                data={"username": f"v4user{n}@example.com", "password": "wrong password"},
                headers={"X-Forwarded-For": spelling},
            )
            assert response.status_code == (400 if n < 8 else 429), (n, spelling)


def test_an_invalid_trusted_proxy_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.settings import SettingsError, load_settings

    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.1,not-an-ip")
    with pytest.raises(SettingsError, match="TRUSTED_PROXIES"):
        load_settings()
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.1")
    monkeypatch.setenv("FORWARDED_HEADER", "forwarded")
    assert load_settings().forwarded_header == "Forwarded"


async def test_forged_addresses_cannot_dodge_the_address_limit(settings: CoreSettings) -> None:
    """Without trusted proxies, a client rotating X-Forwarded-For is still one address."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("192.0.2.50", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            statuses = []
            for n in range(21):  # LOGIN_MAX_FAILURES (5) x 4 per address, each a new username
                response = await client.post(
                    "/auth/jwt/login",
                    data={"username": f"user{n}@example.com", "password": "wrong password"},
                    headers={"X-Forwarded-For": f"203.0.113.{n}"},
                )
                statuses.append(response.status_code)
            assert statuses[:20] == [400] * 20
            assert statuses[20] == 429
