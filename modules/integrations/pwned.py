"""Breached-password check against a Have I Been Pwned compatible range API.

k-anonymity: only the first 5 hex characters of the password's SHA-1 leave the process
(`GET {PWNED_PASSWORDS_URL}/range/{prefix}`); the upstream answers every suffix it knows under
that prefix, and the match is made here. `Add-Padding: true` asks for decoy entries (count 0)
so the answer's size does not hint at the prefix; they are ignored.
"""

from __future__ import annotations

import hashlib

from modules.integrations.exceptions import UpstreamRefusedError
from modules.integrations.http import UpstreamClient

CIRCUIT = "pwned-passwords"


def sha1_prefix_suffix(password: str) -> tuple[str, str]:
    # SHA-1 is what the range API indexes by; it protects nothing here (k-anonymity does).
    digest = hashlib.sha1(password.encode("utf-8"), usedforsecurity=False).hexdigest().upper()
    return digest[:5], digest[5:]


def breach_count(body: str, suffix: str) -> int:
    """The count for `suffix` in a range answer (`SUFFIX:COUNT` lines), 0 when absent."""
    for line in body.splitlines():
        candidate, _, count = line.strip().partition(":")
        if candidate.upper() == suffix:
            try:
                return int(count)
            except ValueError:
                return 0
    return 0


class PwnedPasswords:
    def __init__(self, http: UpstreamClient) -> None:
        self.http = http

    async def times_breached(self, password: str) -> int:
        """How often the password appears in known breaches (0: never).

        Raises `UpstreamError`, `CircuitOpenError` (upstream down), or `UpstreamRefusedError`
        (it answered something other than 200).
        """
        prefix, suffix = sha1_prefix_suffix(password)
        response = await self.http.get(f"range/{prefix}", headers={"Add-Padding": "true"})
        if response.status_code != 200:
            raise UpstreamRefusedError(CIRCUIT, f"answered {response.status_code}")
        return breach_count(response.text, suffix)

    async def aclose(self) -> None:
        await self.http.aclose()
