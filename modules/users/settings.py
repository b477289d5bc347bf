"""Settings of the users module (environment variables, also read from `.env`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.settings import SettingsError
from modules.users.signing_keys import ASYMMETRIC, Algorithm, KeyFileError, load_access_token_keys


class UsersSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    access_token_ttl: int = Field(default=900, gt=0, description="seconds")
    # HS256: signed with SECRET_KEY, only Gatehouse verifies. ES256 / EdDSA / RS256: signed with
    # ACCESS_TOKEN_PRIVATE_KEY_FILE, verifiable by anyone through /.well-known/jwks.json.
    access_token_algorithm: Algorithm = "HS256"  # noqa: S105 - an algorithm name
    # PKCS#8 PEM. Unset outside production: one is generated into DATA_DIR (mode 600).
    access_token_private_key_file: Path | None = None
    # Rotation: keys that signed before (still verify, still in the JWKS), comma-separated, and
    # the key that will sign next (in the JWKS before it signs). Private or public PEM files.
    access_token_previous_key_files: Annotated[list[Path], NoDecode] = Field(default=[])
    access_token_next_key_file: Path | None = None
    refresh_token_ttl: int = Field(
        default=2_592_000, gt=0, description="absolute lifetime of a login session, seconds"
    )
    # How long an ended login session (revoked, or past its absolute lifetime) is kept before
    # the purge deletes it, with its rotated refresh tokens. Meanwhile a replayed refresh token
    # of that session still answers REFRESH_TOKEN_REUSED and logs the reuse (a theft signal);
    # afterwards REFRESH_TOKEN_INVALID. Live sessions keep what reuse detection needs whatever
    # this is. 0: delete ended sessions at the next purge.
    session_retention: int = Field(default=604_800, ge=0, description="seconds")
    # Live sessions a user may hold; a login past it ends the oldest (by login time).
    max_sessions_per_user: int = Field(default=100, ge=1, le=10_000)
    reset_token_ttl: int = Field(default=3600, gt=0, description="seconds")
    verify_token_ttl: int = Field(default=86_400, gt=0, description="seconds")
    # How long the "undo" link mailed to the old address after an email change works.
    email_undo_ttl: int = Field(default=604_800, gt=0, description="seconds")
    login_max_failures: int = Field(default=5, gt=0)
    login_failure_window: int = Field(default=900, gt=0, description="seconds")
    # Per client address per LOGIN_FAILURE_WINDOW: every registration attempt, and successful
    # logins (generous: an office behind one NAT address logs in many times a day; this only
    # stops one address from flooding the session table).
    registrations_per_address: int = Field(default=20, gt=0)
    logins_per_address: int = Field(default=300, gt=0)
    password_min_length: int = Field(default=8, ge=8, le=128)
    password_max_length: int = Field(default=128, ge=8, le=1024)
    # zxcvbn score 0..4; 0 turns the strength check off.
    password_min_score: int = Field(default=2, ge=0, le=4)
    # Threads that hash passwords (argon2id), away from the event loop, per process; 0: the
    # cores minus one shared among the worker processes, max(1, (cores - 1) // WEB_CONCURRENCY).
    password_hash_workers: int = Field(default=0, ge=0, le=64)
    # How much those threads lower their own priority (nice increment, Linux).
    password_hash_nice: int = Field(default=10, ge=0, le=19)
    # Worker processes that run the zxcvbn strength check, apart from the hashing threads.
    password_strength_workers: int = Field(default=1, ge=1, le=16)
    # A strength check not answered within this many seconds (queued behind others) refuses
    # the password ("try again"): it fails closed, never open.
    password_strength_timeout: float = Field(default=5.0, gt=0, le=120, description="seconds")

    # Where mailed links point. Unset: this app's own pages (PUBLIC_URL + /auth/reset-password
    # ?token=…, /auth/verify?token=…, /auth/undo-email-change?token=…). Set: a front-end of the
    # team's own, e.g. https://app.example.com/reset#token={token}; `{token}` is replaced by
    # the URL-encoded token.
    reset_password_url_template: str | None = None
    verify_url_template: str | None = None
    email_undo_url_template: str | None = None

    # The core setting, read here too: production refuses to generate a signing key.
    environment: Literal["development", "test", "production"] = "development"

    @field_validator("access_token_previous_key_files", mode="before")
    @classmethod
    def _split_paths(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator(
        "reset_password_url_template",
        "verify_url_template",
        "email_undo_url_template",
        mode="after",
    )
    @classmethod
    def _link_template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.count("{token}") != 1:
            raise ValueError("must hold {token} exactly once (where the mailed token goes)")
        parts = urlsplit(value.replace("{token}", "t"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL")
        return value

    @model_validator(mode="after")
    def _lengths_in_order(self) -> UsersSettings:
        if self.password_min_length > self.password_max_length:
            raise ValueError("PASSWORD_MIN_LENGTH must not exceed PASSWORD_MAX_LENGTH")
        return self

    @model_validator(mode="after")
    def _key_files_usable(self) -> UsersSettings:
        """Every key file is read at start-up, so a bad one stops the start with its name."""
        algorithm = self.access_token_algorithm
        if (
            algorithm in ASYMMETRIC
            and self.access_token_private_key_file is None
            and self.environment == "production"
        ):
            raise SettingsError(
                f"ACCESS_TOKEN_ALGORITHM={algorithm} needs ACCESS_TOKEN_PRIVATE_KEY_FILE when "
                "ENVIRONMENT=production (a PKCS#8 PEM private key; development generates one)"
            )
        if algorithm not in ASYMMETRIC and self.access_token_private_key_file is not None:
            # Most likely a forgotten ACCESS_TOKEN_ALGORITHM: HS256 would sign, silently.
            raise SettingsError(
                "ACCESS_TOKEN_PRIVATE_KEY_FILE is set but ACCESS_TOKEN_ALGORITHM=HS256 signs "
                "with SECRET_KEY: set ACCESS_TOKEN_ALGORITHM to ES256, EdDSA or RS256 (or list "
                "the key in ACCESS_TOKEN_PREVIOUS_KEY_FILES when switching back to HS256)"
            )
        try:
            # No data folder here: a generated development key is the runtime's business.
            load_access_token_keys(
                algorithm if self.access_token_private_key_file is not None else "HS256",
                "",
                self.access_token_private_key_file,
                self.access_token_previous_key_files,
                self.access_token_next_key_file,
            )
        except KeyFileError as exc:
            raise SettingsError(str(exc)) from None
        return self
