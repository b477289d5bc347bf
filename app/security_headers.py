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


def with_security_headers(
    headers: list[tuple[bytes, bytes]], *, production: bool
) -> list[tuple[bytes, bytes]]:
    always = ALWAYS + ((HSTS,) if production else ())
    replaced = {name for name, _ in always}
    result = [(k, v) for k, v in headers if k.lower() not in replaced]
    present = {k.lower() for k, _ in result}
    result.extend((name, value) for name, value in DEFAULTS if name not in present)
    result.extend(always)
    return result
