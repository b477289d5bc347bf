"""Settings of the users module (environment variables, also read from `.env`)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class UsersSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    access_token_ttl: int = Field(default=900, gt=0, description="seconds")
    refresh_token_ttl: int = Field(
        default=2_592_000, gt=0, description="absolute lifetime of a login session, seconds"
    )
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
    # Threads that hash passwords (argon2id), away from the event loop; 0: cores - 1 (min 1).
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
