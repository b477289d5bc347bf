"""`python -m app --help` and each command's `--help` say what every option does and its
default: checked on the parser itself, and on the real command's output."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from app.cli import build_parser
from app.settings import CoreSettings
from tests.app.processes import run
from tests.conftest import TEST_MODULES, TEST_SECRET

pytestmark = pytest.mark.backend_neutral

# The commands whose options this lane documents; serve and migrate have their own tests.
COMMANDS = ["openapi", "new-module", "create-superuser"]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.fixture
def parser(tmp_path: Path) -> argparse.ArgumentParser:
    settings = CoreSettings(
        environment="test", secret_key=TEST_SECRET, data_dir=tmp_path, modules=TEST_MODULES
    )
    return build_parser(settings)[0]


def test_the_top_level_help_names_every_command_and_where_settings_come_from(
    parser: argparse.ArgumentParser,
) -> None:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    described = {choice.dest: choice.help for choice in action._choices_actions}
    assert set(described) == set(action.choices)
    assert all(text and len(text) > 15 for text in described.values()), described
    assert parser.epilog is not None and ".env" in parser.epilog and "--help" in parser.epilog


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help_that_states_its_default(
    parser: argparse.ArgumentParser, name: str
) -> None:
    command = _subparsers(parser)[name]
    assert command.description, name
    for action in command._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{name} {action.option_strings or action.dest}: no help"
        if action.option_strings and not action.required and action.default is not None:
            assert "default" in action.help, f"{name} {action.option_strings}: default unsaid"
        if action.required and action.option_strings:  # positionals always are
            assert "required" in action.help, f"{name} {action.option_strings}: say required"


def test_create_superuser_help_says_where_the_password_comes_from(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "ENVIRONMENT": "test",
        "SECRET_KEY": TEST_SECRET,
        "DATA_DIR": str(tmp_path),
    }
    result = run(["app", "create-superuser", "--help"], env)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for words in ("--email ADDRESS", "terminal", "asked twice", "standard input", "migrate"):
        assert words in text, words
