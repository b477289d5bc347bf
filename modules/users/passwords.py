"""Password rules: length bounds, no password built from the account's email, and a strength
estimate (zxcvbn) that refuses the most common passwords.

No composition rules (ASVS 6.2.5): a lower-case passphrase, spaces and Unicode are all fine.
The password is checked exactly as typed: nothing is trimmed, folded or truncated (only
zxcvbn's *input* is cut to its first ZXCVBN_MAX_INPUT characters, to bound its cost).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

# zxcvbn's matching is super-linear in the length (~15-30 ms for 64 characters here); past 64
# characters a password's first 64 characters decide whether it is guessable.
ZXCVBN_MAX_INPUT = 64

# zxcvbn() stores the user inputs in a module-level dictionary before matching: two threads
# scoring at once could each use the other's email. One at a time.
_ZXCVBN_LOCK = threading.Lock()

# Runs a CPU-bound function away from the event loop (PasswordHasher.run).
Runner = Callable[..., Awaitable[Any]]


async def _run_inline(function: Callable[..., Any], *args: Any) -> Any:
    return function(*args)


def _address_parts(email: str) -> tuple[str, str]:
    """The case-folded address and its local part."""
    address = email.casefold()
    return address, address.split("@", 1)[0]


def email_words(email: str) -> list[str]:
    """What zxcvbn should treat as known to an attacker: the address, its local part and the
    words in it (ada.lovelace@example.com -> ada.lovelace, ada, lovelace)."""
    address, local_part = _address_parts(email)
    words = [address, local_part]
    words += [w for w in re.split(r"[^\w]+|_", local_part) if len(w) >= 3 and w != local_part]
    return words


def strength_problem(password: str, email: str | None, min_score: int) -> str | None:
    """zxcvbn's verdict, with its feedback as the reason. CPU-bound: run it in a worker."""
    from zxcvbn import zxcvbn  # loads its dictionaries on first use, not at start-up

    with _ZXCVBN_LOCK:
        result = zxcvbn(
            password[:ZXCVBN_MAX_INPUT], user_inputs=email_words(email) if email else []
        )
    if result["score"] >= min_score:
        return None
    feedback = result.get("feedback") or {}
    parts = ["Password is too easy to guess."]
    if feedback.get("warning"):
        parts.append(str(feedback["warning"]))
    parts += [str(s) for s in feedback.get("suggestions") or []]
    return " ".join(parts)


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
            found: str | None = await self.run(strength_problem, password, email, self.min_score)
            reason = found
        return reason
