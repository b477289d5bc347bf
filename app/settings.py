"""Core settings: what every module shares. Each module has its own settings class."""

from __future__ import annotations

import ipaddress
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (256 bits).
MIN_SECRET_KEY_BYTES = 32
SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret


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
    public_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, gt=0, lt=65536)
    # Where development keeps its generated secret key (and the default SQLite file).
    data_dir: Path = Path("data")

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
        if self.secret_key is not None:
            if len(self.secret_key.get_secret_value().encode()) < MIN_SECRET_KEY_BYTES:
                raise SettingsError(
                    f"SECRET_KEY must be at least {MIN_SECRET_KEY_BYTES} bytes (generate one with: "
                    'python -c "import secrets; print(secrets.token_urlsafe(48))")'
                )
        elif self.environment == "production":
            raise SettingsError(
                "SECRET_KEY is required when ENVIRONMENT=production "
                f"(at least {MIN_SECRET_KEY_BYTES} random bytes)"
            )
        return self

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


def _load_or_create_dev_key(path: Path) -> str:
    """Generate the development key once, owner-readable only, so tokens survive restarts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if len(key.encode()) < MIN_SECRET_KEY_BYTES:
            raise SettingsError(
                f"{path} holds a key shorter than {MIN_SECRET_KEY_BYTES} bytes"
            ) from None
        return key
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
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
