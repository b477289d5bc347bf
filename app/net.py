"""The client's address, believing X-Forwarded-For / Forwarded only from TRUSTED_PROXIES."""

from __future__ import annotations

import ipaddress
import re

from starlette.requests import Request

_FORWARDED_FOR = re.compile(r'for="?\[?([^";,\]]+)', re.IGNORECASE)


def _is_trusted(address: str, trusted: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in trusted:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _forwarded_chain(request: Request) -> list[str]:
    forwarded = request.headers.get("forwarded")
    if forwarded:
        return [m.strip() for m in _FORWARDED_FOR.findall(forwarded)]
    xff = request.headers.get("x-forwarded-for")
    if xff:
        return [part.strip() for part in xff.split(",") if part.strip()]
    return []


def client_address(request: Request) -> str:
    """The nearest address not belonging to a trusted proxy."""
    peer = request.client.host if request.client else "unknown"
    trusted: list[str] = request.app.state.settings.trusted_proxies
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    for hop in reversed(_forwarded_chain(request)):
        if not _is_trusted(hop, trusted):
            return hop
    return peer
