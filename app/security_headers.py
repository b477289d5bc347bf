"""The headers every response carries (added by `app/middleware.py` on the way out).

An API answers JSON, so the defaults are the strictest: nothing may frame, sniff, refer or
cache it. A handler that needs otherwise sets the header itself and keeps it (the docs pages set
their own Content-Security-Policy, the docs assets their own Cache-Control).

`Cache-Control: no-store` is the default for every response rather than a list of "personal"
routes: a new route that returns personal data is then protected without anyone remembering to
add it to a list (/users/me, /users/me/sessions, /users/{id}, the token answers, …).
"""

from __future__ import annotations

# Set only when the response has none of its own.
DEFAULTS: tuple[tuple[bytes, bytes], ...] = (
    (b"cache-control", b"no-store"),
    # A JSON answer never loads anything and is never framed.
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
)

# Always set (a handler's own value for these is replaced).
ALWAYS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    # For browsers that predate CSP's frame-ancestors.
    (b"x-frame-options", b"DENY"),
)

# Production only: a development server on http://127.0.0.1 must not pin a browser to HTTPS for
# a year. Browsers ignore it over plain http, so it takes effect behind the TLS proxy.
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class SecurityHeaders:
    """The header rules, resolved once per app (not per response): `apply` walks a response's
    headers once and appends precomputed raw pairs."""

    def __init__(self, *, production: bool) -> None:
        self.always = ALWAYS + ((HSTS,) if production else ())
        self.defaults = DEFAULTS
        self.default_names = frozenset(name for name, _ in DEFAULTS)
        self.replaced = frozenset(name for name, _ in self.always)

    def apply(
        self,
        headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...],
        extra: tuple[bytes, bytes] | None = None,
    ) -> list[tuple[bytes, bytes]]:
        """The response's own headers (minus those `always` replaces, and minus `extra`'s
        name), the defaults it lacks, `always`, then `extra` (the request id)."""
        replaced = self.replaced
        default_names = self.default_names
        dropped = extra[0] if extra is not None else None
        result: list[tuple[bytes, bytes]] = []
        present: set[bytes] = set()
        for pair in headers:
            name = pair[0].lower()
            if name in replaced or name == dropped:
                continue
            if name in default_names:
                present.add(name)
            result.append(pair)
        if present:
            result.extend(pair for pair in self.defaults if pair[0] not in present)
        else:
            result.extend(self.defaults)
        result.extend(self.always)
        if extra is not None:
            result.append(extra)
        return result


def with_security_headers(
    headers: list[tuple[bytes, bytes]], *, production: bool
) -> list[tuple[bytes, bytes]]:
    return SecurityHeaders(production=production).apply(headers)
