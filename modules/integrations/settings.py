"""Settings of the integrations module: every upstream's address and the breakers' tuning."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class IntegrationsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    mail_url: str = "console://"
    mail_from: str = "Gatehouse <no-reply@gatehouse.local>"
    pwned_passwords_url: str | None = None
    breaker_threshold: int = Field(default=5, ge=1)
    breaker_ttl: float = Field(default=30, gt=0)
