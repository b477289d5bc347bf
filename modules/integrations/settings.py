"""Settings of the integrations module: every upstream's address and the breakers' tuning."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, FilePath, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.settings import SettingsError
from modules.integrations.mail_url import MailUrl, parse_mail_url


class IntegrationsSettings(BaseSettings):
    # hide_input_in_errors: a rejected MAIL_URL may hold the SMTP password.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    # repr=False: an SMTP URL may carry the password.
    mail_url: str = Field(default="console://", repr=False)
    mail_from: str = "Gatehouse <no-reply@gatehouse.local>"
    mail_timeout: float = Field(default=10, gt=0, description="seconds per SMTP session")
    # PEM file of the CA(s) that signed the relay's certificate; replaces the system's CAs.
    mail_tls_ca_file: FilePath | None = None
    # The outbox (outbox.py): mail that cannot go now waits in the database and is retried.
    mail_queue_max: int = Field(default=10_000, ge=1, description="mails waiting, at most")
    mail_max_attempts: int = Field(default=8, ge=1, description="deliveries tried per mail")
    mail_retry_base: float = Field(default=30, gt=0, description="seconds; doubles per attempt")
    mail_retry_max: float = Field(default=3600, gt=0, description="seconds between attempts")
    mail_outbox_poll: float = Field(default=10, gt=0, description="seconds between looks")
    pwned_passwords_url: str | None = None
    pwned_passwords_timeout: float = Field(default=2, gt=0, description="seconds")
    # Validated here: purgatory silently turns a threshold or ttl of 0 into its default.
    breaker_threshold: int = Field(default=5, ge=1, description="consecutive failures")
    breaker_ttl: float = Field(default=30, gt=0, description="seconds open before a trial")
    # Redis answers in well under a millisecond on a LAN: past this it is treated as down.
    redis_timeout: float = Field(default=0.25, gt=0, description="seconds per Redis call")

    # The core setting, read here too so that a production console mailer is refused before
    # the app is built (the lifespan checks the core value again).
    environment: Literal["development", "test", "production"] = "development"

    @field_validator("mail_url")
    @classmethod
    def _valid_mail_url(cls, value: str) -> str:
        parse_mail_url(value)  # raises a one-line ValueError that never repeats the URL
        return value

    @field_validator("pwned_passwords_url")
    @classmethod
    def _blank_is_off(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @model_validator(mode="after")
    def _no_console_in_production(self) -> IntegrationsSettings:
        check_mail_allowed(self.mail, self.environment)
        return self

    @property
    def mail(self) -> MailUrl:
        return parse_mail_url(self.mail_url)


def check_mail_allowed(url: MailUrl, environment: str) -> None:
    if environment != "production":
        return
    if url.scheme == "console":
        raise SettingsError(
            "MAIL_URL=console:// only prints mail and is refused when ENVIRONMENT=production; "
            "set MAIL_URL=smtp://[user:pass@]host:port (or smtps://)"
        )
    if url.username is not None and not url.tls_guaranteed:
        # Opportunistic STARTTLS is used whenever offered, but whoever sits on the path can
        # strip the offer: with credentials, TLS must be required, not hoped for.
        raise SettingsError(
            "MAIL_URL=smtp:// with credentials may send them in clear and is refused when "
            "ENVIRONMENT=production; use smtps:// or add ?starttls=true"
        )
