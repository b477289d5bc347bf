"""Core settings: what every module shares. Each module has its own settings class."""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import secrets
import tempfile
import zlib
from collections import Counter
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (256 bits).
MIN_SECRET_KEY_BYTES = 32
SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret
# Production refuses placeholders (`aaaa…`, `change-me-change-me…`): a floor well below what any
# generated key of 32+ characters scores (a random 32-character hex key: 95 bits at worst), so a
# real key is never refused by bad luck. It cannot prove randomness; it catches what is not.
MIN_SECRET_KEY_ESTIMATED_BITS = 80
MIN_SECRET_KEY_DISTINCT_CHARACTERS = 12
# A scrape token short enough to guess is no protection.
MIN_METRICS_TOKEN_CHARACTERS = 16
GENERATE_KEY_HINT = (
    'generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'
)


class SettingsError(ValueError):
    """A setting is missing or unsafe; the message is one line, fit to print at start-up."""


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class CoreSettings(BaseSettings):
    """Settings read by `app/`. Environment variables, also read from `.env`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///./data/gatehouse.db"
    redis_url: str | None = None
    secret_key: SecretStr | None = None
    log_format: Literal["pretty", "json"] | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    modules: Annotated[list[str], NoDecode] = Field(default=["users", "integrations"])
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default=[])
    # The one header the trusted proxy writes: a client may send the other one itself.
    forwarded_header: Literal["X-Forwarded-For", "Forwarded"] = "X-Forwarded-For"
    max_body_bytes: int = Field(default=65536, gt=0)
    # Where users reach the service: the base of mailed links. Unset: the address this app
    # serves (HOST, PORT), outside production only. Never read from a request's Host header.
    public_url: str | None = None
    # /docs, /redoc, /openapi.json: unset means on, except in production.
    docs_enabled: bool | None = None
    # Seconds from the end of the headers until the whole body must be in (then 408).
    body_read_timeout: float = Field(default=10, gt=0)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, gt=0, lt=65536)
    # Where development keeps its generated secret key (and the default SQLite file).
    data_dir: Path = Path("data")
    # /metrics (Prometheus): unset means on, except in production. With a token set, scrapes
    # need `Authorization: Bearer <token>`.
    metrics_enabled: bool | None = None
    metrics_token: SecretStr | None = None
    # Housekeeping (app/purge.py): how often each serving process tries to run the modules'
    # purges (one process at a time does; 0: only `python -m app purge`), and how many rows
    # one transaction deletes at most.
    purge_interval: float = Field(default=3600, ge=0, description="seconds")
    purge_batch_size: int = Field(default=1000, gt=0, le=100_000)
    # Worker processes serving this app (`python -m app serve --workers N` sets it for them;
    # uvicorn's own `--workers` reads the same variable). Shared cores and per-process state
    # are sized by it: the hashing threads, whether a per-process cache is safe.
    workers: int = Field(
        default=1, ge=1, le=256, validation_alias=AliasChoices("WEB_CONCURRENCY", "workers")
    )
    # Apply pending migrations at start-up. Unset: on in development only (a fresh checkout
    # works with bare `uvicorn app.main:app`); production migrates as a deploy step
    # (`python -m app migrate`), never implicitly.
    migrate_on_start: bool | None = None

    _split_modules = field_validator("modules", "trusted_proxies", mode="before")(_split_csv)

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise SettingsError(
                    f"TRUSTED_PROXIES: {entry[:50]!r} is not an IP address or network (CIDR)"
                ) from None
        return value

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _usable_metrics_token(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return None  # METRICS_TOKEN= (empty): no token, not a token anyone matches
            if len(value) < MIN_METRICS_TOKEN_CHARACTERS:
                raise SettingsError(
                    f"METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_CHARACTERS} characters "
                    f"({GENERATE_KEY_HINT})"
                )
        return value

    @field_validator("forwarded_header", mode="before")
    @classmethod
    def _header_name(cls, value: object) -> object:
        if isinstance(value, str):
            names = {"x-forwarded-for": "X-Forwarded-For", "forwarded": "Forwarded"}
            return names.get(value.strip().lower(), value)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> CoreSettings:
        key = self.secret_key.get_secret_value() if self.secret_key is not None else None
        if key is not None and len(key.encode()) < MIN_SECRET_KEY_BYTES:
            raise SettingsError(
                f"SECRET_KEY must be at least {MIN_SECRET_KEY_BYTES} bytes ({GENERATE_KEY_HINT})"
            )
        if self.environment != "production":
            return self
        # Every refusal at once, in one line: a deploy fixes them all in one go.
        problems = []
        if key is None:
            problems.append(
                "SECRET_KEY is required when ENVIRONMENT=production "
                f"(at least {MIN_SECRET_KEY_BYTES} random bytes)"
            )
        elif not _looks_random(key):
            problems.append(
                "SECRET_KEY looks like a placeholder, not a random key "
                f"(too few distinct characters or too repetitive; {GENERATE_KEY_HINT})"
            )
        url_problem = _public_url_problem(self.public_url)
        if url_problem:
            problems.append(url_problem)
        if problems:
            raise SettingsError("; ".join(problems))
        return self

    @property
    def serve_docs(self) -> bool:
        if self.docs_enabled is not None:
            return self.docs_enabled
        return self.environment != "production"

    @property
    def serve_metrics(self) -> bool:
        if self.metrics_enabled is not None:
            return self.metrics_enabled
        return self.environment != "production"

    @property
    def migrates_on_start(self) -> bool:
        if self.migrate_on_start is not None:
            return self.migrate_on_start
        return self.is_development

    @property
    def effective_public_url(self) -> str:
        """PUBLIC_URL without a trailing slash; unset, the address HOST and PORT serve (an
        any-address HOST, `0.0.0.0` or `::`, is reached through loopback on this machine)."""
        if self.public_url is not None:
            return self.public_url.rstrip("/")
        return f"http://{_reachable_host(self.host)}:{self.port}"

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    @property
    def effective_log_format(self) -> Literal["pretty", "json"]:
        if self.log_format is not None:
            return self.log_format
        return "pretty" if self.is_development else "json"

    @cached_property
    def signing_key(self) -> str:
        """The key that signs tokens: SECRET_KEY, or outside production one kept in DATA_DIR."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return _load_or_create_dev_key(self.data_dir / SECRET_KEY_FILE)


def estimated_key_bits(key: str) -> float:
    """A pessimistic estimate of a key's entropy: the smaller of its character-frequency
    (Shannon) total and its zlib-compressed size. Repeats and runs score low on one or both."""
    if not key:
        return 0.0
    counts = Counter(key)
    length = len(key)
    shannon = -sum(n / length * math.log2(n / length) for n in counts.values()) * length
    # 6 bytes of zlib framing (header and checksum) carry no information about the key.
    compressed = (len(zlib.compress(key.encode(), 9)) - 6) * 8
    return min(shannon, float(compressed))


def _looks_random(key: str) -> bool:
    return (
        len(set(key)) >= MIN_SECRET_KEY_DISTINCT_CHARACTERS
        and estimated_key_bits(key) >= MIN_SECRET_KEY_ESTIMATED_BITS
    )


def _reachable_host(host: str) -> str:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host  # a name, e.g. localhost
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    return f"[{address}]" if address.version == 6 else str(address)


def _public_url_problem(url: str | None) -> str | None:
    """Production's PUBLIC_URL is where users reach the service: the mails' links carry it."""
    if url is None:
        return (
            "PUBLIC_URL must be set when ENVIRONMENT=production "
            "(the address users reach, e.g. https://auth.example.com; mails link to it)"
        )
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        return f"PUBLIC_URL must be an absolute http(s) URL (got {url!r})"
    if _is_loopback(host):
        return (
            "PUBLIC_URL must not be a loopback or unspecified address when "
            f"ENVIRONMENT=production (got {url!r}: mailed links would point at the reader's "
            "own machine)"
        )
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _load_or_create_dev_key(path: Path) -> str:
    """Generate the development key once, owner-readable only, so tokens survive restarts.

    Written whole under a temporary name, then linked into place: processes starting together
    (`serve --workers` in development) see no file or the whole key, never a half-written one,
    and `link` fails when the file exists, so the first key written is the one every process
    keeps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48) + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    key = path.read_text().strip()
    if len(key.encode()) < MIN_SECRET_KEY_BYTES:
        raise SettingsError(f"{path} holds a key shorter than {MIN_SECRET_KEY_BYTES} bytes")
    return key


def load_settings() -> CoreSettings:
    """Read settings, turning pydantic's multi-line report into one clear line."""
    from pydantic import ValidationError

    try:
        return CoreSettings()
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None


def describe_validation_error(exc: Exception) -> str:
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    parts = []
    for error in exc.errors():
        ctx_error = (error.get("ctx") or {}).get("error")
        if isinstance(ctx_error, SettingsError):
            parts.append(str(ctx_error))
            continue
        name = ".".join(str(p) for p in error["loc"]).upper() or "settings"
        parts.append(f"{name}: {error['msg']}")
    return "invalid settings: " + "; ".join(parts)
