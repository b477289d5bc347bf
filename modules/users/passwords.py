"""Password rules: length bounds and no password built from the account's email.

No composition rules (ASVS 6.2.5): a lower-case passphrase, spaces and Unicode are all fine.
The password is checked exactly as typed: nothing is trimmed, folded or truncated.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = 8
    max_length: int = 128

    def problems(self, password: str, email: str | None) -> str | None:
        """The reason the password is refused, or None when it passes."""
        # Length first, so an over-long password is refused before any costly check.
        if len(password) < self.min_length:
            return f"Password must be at least {self.min_length} characters long."
        if len(password) > self.max_length:
            return f"Password must be at most {self.max_length} characters long."
        if email:
            lowered = password.casefold()
            address = email.casefold()
            local_part = address.split("@", 1)[0]
            if address in lowered or (len(local_part) >= 3 and lowered == local_part):
                return "Password must not contain your email address."
        return None
