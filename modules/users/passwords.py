"""Password rules: length bounds, no password built from the account's email, and a strength
estimate (zxcvbn) that refuses the most common passwords.

No composition rules (ASVS 6.2.5): a lower-case passphrase, spaces and Unicode are all fine.
The password is checked exactly as typed: nothing is trimmed, folded or truncated (only
zxcvbn's *input* is bounded, to bound its cost: see strength.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from modules.users.strength import TOO_SLOW, CheckUnavailable, strength_problem

# Runs the CPU-bound strength check: StrengthChecker.run in the app (its own worker process,
# never the hashing threads); inline by default, for scripts.
Runner = Callable[..., Awaitable[Any]]


async def _run_inline(function: Callable[..., Any], *args: Any) -> Any:
    return function(*args)


def _address_parts(email: str) -> tuple[str, str]:
    """The case-folded address and its local part."""
    address = email.casefold()
    return address, address.split("@", 1)[0]


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = 8
    max_length: int = 128
    # zxcvbn score 0..4 a password needs; 0 turns the check off.
    min_score: int = 2
    run: Runner = _run_inline

    def length_problem(self, password: str) -> str | None:
        if len(password) < self.min_length:
            return f"Password must be at least {self.min_length} characters long."
        if len(password) > self.max_length:
            return f"Password must be at most {self.max_length} characters long."
        return None

    @staticmethod
    def email_problem(password: str, email: str | None) -> str | None:
        if not email:
            return None
        lowered = password.casefold()
        address, local_part = _address_parts(email)
        if address in lowered or (len(local_part) >= 3 and lowered == local_part):
            return "Password must not contain your email address."
        return None

    async def problems(self, password: str, email: str | None) -> str | None:
        """The reason the password is refused, or None when it passes."""
        # Cheapest first: an over-long password is refused before any costly check.
        reason = self.length_problem(password) or self.email_problem(password, email)
        if reason is None and self.min_score > 0:
            try:
                found: str | None = await self.run(
                    strength_problem, password, email, self.min_score
                )
            except CheckUnavailable:
                found = TOO_SLOW  # fails closed: an unchecked password is not accepted
            reason = found
        return reason
