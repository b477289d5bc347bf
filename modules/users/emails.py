"""The one canonical form of an email address: what is stored, looked up, limited and mailed.

NFKC folds compatibility spellings (full-width letters → ASCII, ligatures, NFD → NFC),
then the whole address is lower-cased in Python, so the answer never depends on the database's
own `lower()` (PostgreSQL's turns `İ` into `i`, Python's into `i̇`). The local part is
lower-cased too: RFC 5321 lets it be case-sensitive, but no mail provider a user would sign up
with treats `Ada@` and `ada@` as two mailboxes, while two accounts for them are a takeover risk.

The form is stored in `user.email`, whose unique index then makes the canonical address unique;
every path (register, login, forgot/verify, the limiter, admin commands) goes through
`canonical_email` before it reads or writes.
"""

from __future__ import annotations

import unicodedata


def canonical_email(address: str) -> str:
    # NFKC twice: lower-casing can produce a sequence NFKC would spell differently.
    folded = unicodedata.normalize("NFKC", address).lower()
    return unicodedata.normalize("NFKC", folded)
