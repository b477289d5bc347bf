"""The resilient HTTP client: one per upstream, every request behind the upstream's circuit.

Failures (counted by the circuit): connection errors, timeouts, 5xx. A 4xx is an answer — the
upstream works — so it is returned to the caller and counts as a success. Callers get an
`UpstreamResponse` or one of our errors (`UpstreamError`, `UpstreamTimeoutError`,
`CircuitOpenError`), never an httpx or purgatory exception.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from modules.integrations.circuit import Circuit
from modules.integrations.exceptions import UpstreamError, UpstreamTimeoutError

USER_AGENT = "gatehouse/0.1"


@dataclass(frozen=True)
class UpstreamResponse:
    """An answer below 500, read in full (the connection is back in the pool)."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class UpstreamClient:
    """A pooled httpx client for one base URL, behind `circuit`.

    `timeout` bounds each phase (read, write, pool wait) and, doubled, the whole request, so a
    server that trickles bytes cannot hold a call forever.
    """

    def __init__(
        self,
        circuit: Circuit,
        base_url: str,
        *,
        timeout: float,
        connect_timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 20,
    ) -> None:
        self.circuit = circuit
        self._deadline = 2 * timeout + (connect_timeout or timeout)
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout, connect=connect_timeout or timeout),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections // 2
            ),
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            follow_redirects=False,
            # No proxy, netrc or CA settings picked up from the environment: what this client
            # does is what its code says.
            trust_env=False,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> UpstreamResponse:
        async def send() -> UpstreamResponse:
            return await self._send(method, path, params, headers, json_body)

        return await self.circuit.call(send)

    async def get(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        return await self.request("GET", path, params=params, headers=headers)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        json_body: Any,
    ) -> UpstreamResponse:
        name = self.circuit.name
        try:
            async with asyncio.timeout(self._deadline):
                response = await self._client.request(
                    method, path, params=params, headers=headers, json=json_body
                )
        except (httpx.TimeoutException, TimeoutError):
            raise UpstreamTimeoutError(name, "timed out") from None
        except httpx.HTTPError as exc:
            # The type says what went wrong (ConnectError, RemoteProtocolError, …); the message
            # may carry the URL, which stays out of logs and answers.
            raise UpstreamError(name, f"request failed: {type(exc).__name__}") from None
        if response.status_code >= 500:
            raise UpstreamError(
                name, f"answered {response.status_code}", status_code=response.status_code
            )
        return UpstreamResponse(
            status_code=response.status_code,
            headers=dict(response.headers),
            content=response.content,
        )
