"""Breaker tuning is validated at start-up: purgatory would silently turn 0 into its default."""

from __future__ import annotations

import pytest

from app.factory import create_app
from app.loader import ModuleLoadError
from app.settings import CoreSettings
from modules.integrations.breakers import Breakers


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("BREAKER_THRESHOLD", "0", "BREAKER_THRESHOLD: Input should be greater than or equal to 1"),
        ("BREAKER_THRESHOLD", "-3", "BREAKER_THRESHOLD: Input should be greater than or equal"),
        ("BREAKER_TTL", "0", "BREAKER_TTL: Input should be greater than 0"),
        ("PWNED_PASSWORDS_TIMEOUT", "0", "PWNED_PASSWORDS_TIMEOUT: Input should be greater than 0"),
    ],
)
def test_zero_is_refused_at_start_up_with_one_clear_line(
    settings: CoreSettings, monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ModuleLoadError) as caught:
        create_app(settings)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("module 'integrations': invalid settings:")
    assert says in message


def test_the_settings_reach_the_breakers(
    settings: CoreSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BREAKER_THRESHOLD", "7")
    monkeypatch.setenv("BREAKER_TTL", "12.5")
    integrations = create_app(settings).state.module_settings["integrations"]
    assert (integrations.breaker_threshold, integrations.breaker_ttl) == (7, 12.5)


@pytest.mark.parametrize(("threshold", "ttl"), [(0, 30), (5, 0)])
def test_breakers_refuse_what_purgatory_would_silently_replace(threshold: int, ttl: float) -> None:
    with pytest.raises(ValueError, match="threshold must be >= 1 and ttl > 0"):
        Breakers(threshold=threshold, ttl=ttl)
