"""Settings refuse insecure values with one clear line."""

from __future__ import annotations

import multiprocessing
import secrets
import stat
from pathlib import Path
from typing import Any

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


def test_production_accepts_a_generated_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("PUBLIC_URL", "https://auth.example.com")
    # The shortest keys the usual generators make: none may be refused by bad luck.
    for make in (secrets.token_hex, secrets.token_urlsafe):
        for _ in range(300):
            key = make(32) if make is secrets.token_hex else make(24)
            monkeypatch.setenv("SECRET_KEY", key)
            settings = load_settings()
            assert settings.signing_key == key
    assert settings.effective_log_format == "json"
    assert settings.serve_docs is False


@pytest.mark.parametrize(
    "key",
    [
        "a" * 64,
        "k" * 32,
        "abcd" * 16,
        "change-me-change-me-change-me-change-me",
        "01010101010101010101010101010101",
    ],
)
def test_production_refuses_a_placeholder_secret(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("PUBLIC_URL", "https://auth.example.com")
    monkeypatch.setenv("SECRET_KEY", key)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("invalid settings: SECRET_KEY looks like a placeholder")
    assert "\n" not in message
    assert key not in message
    # Outside production the same key is only held to its length (tests use fixed keys).
    monkeypatch.setenv("ENVIRONMENT", "test")
    assert load_settings().signing_key == key


@pytest.mark.parametrize(
    "url",
    [
        None,
        "http://127.0.0.1:8000",
        "http://localhost:8000",
        "https://api.localhost",
        "http://[::1]:8000",
        "http://0.0.0.0:8000",
        "http://127.8.9.10",
        "auth.example.com",
    ],
)
def test_production_refuses_an_unset_or_loopback_public_url(
    monkeypatch: pytest.MonkeyPatch, url: str | None
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", secrets.token_urlsafe(48))
    if url is None:
        monkeypatch.delenv("PUBLIC_URL", raising=False)
    else:
        monkeypatch.setenv("PUBLIC_URL", url)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("invalid settings: PUBLIC_URL must") and "\n" not in message


def test_production_names_every_refused_setting_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", "a" * 48)
    monkeypatch.delenv("PUBLIC_URL", raising=False)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "SECRET_KEY looks like a placeholder" in message
    assert "PUBLIC_URL must be set" in message
    assert "\n" not in message


def test_docs_follow_the_environment_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CoreSettings(environment="development").serve_docs is True
    assert CoreSettings(environment="test").serve_docs is True
    key = secrets.token_urlsafe(48)
    url = "https://auth.example.com"
    production = CoreSettings(environment="production", secret_key=key, public_url=url)
    assert production.serve_docs is False
    enabled = CoreSettings(
        environment="production", secret_key=key, public_url=url, docs_enabled=True
    )
    assert enabled.serve_docs is True
    assert CoreSettings(environment="development", docs_enabled=False).serve_docs is False


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


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("127.0.0.1", 8000, "http://127.0.0.1:8000"),
        ("127.0.0.1", 9123, "http://127.0.0.1:9123"),
        ("0.0.0.0", 8080, "http://127.0.0.1:8080"),
        ("::", 8080, "http://[::1]:8080"),
        ("::1", 8001, "http://[::1]:8001"),
        ("localhost", 8002, "http://localhost:8002"),
    ],
)
def test_public_url_follows_host_and_port_unless_set(
    monkeypatch: pytest.MonkeyPatch, host: str, port: int, expected: str
) -> None:
    """Mailed links point at the address this app serves: PORT=9123 used to mail :8000."""
    monkeypatch.delenv("PUBLIC_URL", raising=False)
    monkeypatch.setenv("HOST", host)
    monkeypatch.setenv("PORT", str(port))
    assert load_settings().effective_public_url == expected
    monkeypatch.setenv("PUBLIC_URL", "https://auth.example.com/")
    assert load_settings().effective_public_url == "https://auth.example.com"


_STARTERS = 8


def _read_dev_key(data_dir: str, barrier: Any, results: Any) -> None:
    barrier.wait()  # every process asks for the key at the same instant, as workers starting
    try:
        results.put(CoreSettings(environment="development", data_dir=Path(data_dir)).signing_key)
    except SettingsError as exc:
        results.put(f"error: {exc}")


@pytest.mark.backend_neutral  # no database at all
def test_workers_starting_together_share_one_whole_development_key(tmp_path: Path) -> None:
    """Several processes start at once without SECRET_KEY (`serve --workers` in development):
    each gets the same key, none reads a file another is still writing (it was created empty,
    then written: a reader in between refused to start, "holds a key shorter than 32 bytes")."""
    context = multiprocessing.get_context("spawn")
    for round_ in range(6):
        data_dir = tmp_path / f"round{round_}"
        barrier = context.Barrier(_STARTERS)
        results = context.Queue()
        processes = [
            context.Process(target=_read_dev_key, args=(str(data_dir), barrier, results))
            for _ in range(_STARTERS)
        ]
        for process in processes:
            process.start()
        keys = [results.get(timeout=60) for _ in processes]
        for process in processes:
            process.join(timeout=60)
        assert len(set(keys)) == 1, keys
        assert len(keys[0]) >= 32 and not keys[0].startswith("error")
        assert (data_dir / "secret_key").read_text().strip() == keys[0]
