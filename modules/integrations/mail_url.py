"""MAIL_URL: `console://`, `smtp://[user:pass@]host[:port]`, `smtps://…`, `…?starttls=true`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class MailUrl:
    scheme: Literal["console", "smtp", "smtps"]
    host: str = ""
    port: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False

    @property
    def tls_guaranteed(self) -> bool:
        """TLS or no mail: implicit TLS, or a STARTTLS upgrade that must succeed."""
        return self.scheme == "smtps" or self.starttls


def parse_mail_url(url: str) -> MailUrl:
    """Errors never repeat the URL: it may hold the SMTP password."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("MAIL_URL is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme == "console":
        return MailUrl(scheme="console")
    if scheme not in DEFAULT_PORTS:
        raise ValueError(
            f"MAIL_URL scheme {scheme!r} is not supported (console://, smtp://, smtps://)"
        )
    if not parts.hostname:
        raise ValueError("MAIL_URL needs a host (smtp://[user:pass@]host:port)")
    query = {key.lower(): values[-1].lower() for key, values in parse_qs(parts.query).items()}
    starttls_value = query.pop("starttls", "false")
    if starttls_value not in _TRUE | _FALSE:
        raise ValueError("MAIL_URL starttls must be true or false")
    if query:
        raise ValueError(f"MAIL_URL has unknown parameters: {', '.join(sorted(query))}")
    starttls = starttls_value in _TRUE
    if starttls and scheme == "smtps":
        raise ValueError("MAIL_URL: smtps:// is TLS already; starttls=true goes with smtp://")
    return MailUrl(
        scheme="smtps" if scheme == "smtps" else "smtp",
        host=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        starttls=starttls,
    )
