"""Settings refuse insecure values with one clear line."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app.settings import CoreSettings, SettingsError, load_settings


def test_production_without_secret_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "SECRET_KEY is required" in message
    assert "\n" not in message


def test_short_secret_key_is_refused_in_every_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for environment in ("development", "test", "production"):
        monkeypatch.setenv("ENVIRONMENT", environment)
        monkeypatch.setenv("SECRET_KEY", "x" * 31)
        with pytest.raises(SettingsError, match="at least 32 bytes"):
            load_settings()


def test_production_accepts_a_long_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", "k" * 32)
    settings = load_settings()
    assert settings.signing_key == "k" * 32
    assert settings.effective_log_format == "json"


def test_development_generates_one_key_and_keeps_it(tmp_path: Path) -> None:
    first = CoreSettings(environment="development", data_dir=tmp_path).signing_key
    second = CoreSettings(environment="development", data_dir=tmp_path).signing_key
    assert first == second
    assert len(first.encode()) >= 32
    key_file = tmp_path / "secret_key"
    # Readable and writable by the owner only.
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert CoreSettings(environment="development", data_dir=tmp_path).effective_log_format == (
        "pretty"
    )


def test_modules_and_proxies_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODULES", "users, integrations")
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.1,192.168.0.0/16")
    settings = load_settings()
    assert settings.modules == ["users", "integrations"]
    assert settings.trusted_proxies == ["10.0.0.1", "192.168.0.0/16"]


def test_invalid_value_is_one_line_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_BODY_BYTES", "-1")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "MAX_BODY_BYTES" in str(caught.value)
    assert "\n" not in str(caught.value)
