"""docs/openapi.json is the committed contract: it must equal what the app serves, and a
change that can break a generated client must be acknowledged in CHANGELOG.md
(scripts/openapi_contract.py)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from scripts import openapi_contract
from scripts.openapi_contract import (
    SNAPSHOT,
    breaking_changes,
    changelog_text,
    served_schema,
    unacknowledged,
)

pytestmark = pytest.mark.backend_neutral

ROOT = Path(__file__).resolve().parent.parent
FIX = "run `make openapi` and commit docs/openapi.json"


@pytest.fixture(scope="module")
def served() -> dict[str, Any]:
    return served_schema()


def test_committed_schema_is_what_the_app_serves(served: dict[str, Any]) -> None:
    committed = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    unacked = unacknowledged(breaking_changes(committed, served), changelog_text())
    assert not unacked, openapi_contract._explain(unacked)
    if served != committed:
        changed = sorted(
            f"{m.upper()} {p}"
            for p in set(served["paths"]) | set(committed["paths"])
            for m in set(served["paths"].get(p, {})) | set(committed["paths"].get(p, {}))
            if served["paths"].get(p, {}).get(m) != committed["paths"].get(p, {}).get(m)
        )
        pytest.fail(
            f"docs/openapi.json differs from the served schema (no breaking change): {FIX}. "
            f"Operations that differ: {changed or 'none (components, tags or info)'}"
        )


def _git(*args: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    done = subprocess.run([git, *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout if done.returncode == 0 else None


def test_the_last_change_of_the_snapshot_is_acknowledged() -> None:
    """Regenerating the file cannot launder a break: its last change (uncommitted, or the last
    commit that touched it) is compared with the version before it."""
    if _git("rev-parse", "--is-inside-work-tree") is None:
        pytest.skip("not a git checkout: no earlier snapshot to compare with")
    current = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    head = _git("show", "HEAD:docs/openapi.json")
    before: str | None
    if head is not None and json.loads(head) != current:
        before = head  # uncommitted change
    else:
        last = (_git("log", "-n", "1", "--format=%H", "--", "docs/openapi.json") or "").strip()
        before = _git("show", f"{last}^:docs/openapi.json") if last else None
    if before is None:
        return  # the first snapshot: nothing earlier to break
    unacked = unacknowledged(breaking_changes(json.loads(before), current), changelog_text())
    assert not unacked, openapi_contract._explain(unacked)


def _user_create(schema: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = schema["components"]["schemas"]["UserCreate"]
    return found


def test_a_removed_field_is_breaking_an_added_optional_one_is_not(
    served: dict[str, Any],
) -> None:
    removed = copy.deepcopy(served)
    del _user_create(removed)["properties"]["password"]
    assert breaking_changes(served, removed) == ["removed field: UserCreate.password"]
    added = copy.deepcopy(served)
    _user_create(added)["properties"]["nickname"] = {"type": "string"}
    assert breaking_changes(served, added) == []
    # Required is another matter: an old client does not send it.
    _user_create(added)["required"].append("nickname")
    assert breaking_changes(served, added) == ["newly required field: UserCreate.nickname"]


def test_other_breaking_changes(served: dict[str, Any]) -> None:
    new = copy.deepcopy(served)
    del new["paths"]["/auth/jwt/refresh"]
    new["paths"]["/auth/jwt/login"]["post"]["operationId"] = "signIn"
    codes = new["components"]["schemas"]["ProblemDetail"]["properties"]["code"]["enum"]
    codes.remove("RATE_LIMITED")
    del new["components"]["schemas"]["TokenPair"]["properties"]["expires_in"]
    found = breaking_changes(served, new)
    assert "removed operation: POST /auth/jwt/refresh" in found
    assert "changed operation id: POST /auth/jwt/login (login → signIn)" in found
    assert "removed enum value: ProblemDetail.code RATE_LIMITED" in found
    assert "removed field: TokenPair.expires_in" in found
    # Renaming a component is not a change on the wire.
    renamed = json.loads(json.dumps(served).replace("TokenPair", "Tokens"))
    assert breaking_changes(served, renamed) == []
    assert breaking_changes(served, served) == []


def test_make_openapi_refuses_an_unacknowledged_break(
    served: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`write` (make openapi): an added optional field is written; a removed field is refused
    until CHANGELOG.md quotes it."""
    snapshot, changelog = tmp_path / "openapi.json", tmp_path / "CHANGELOG.md"
    snapshot.write_text(openapi_contract.render(served))
    changelog.write_text("# Changelog\n")
    monkeypatch.setattr(openapi_contract, "SNAPSHOT", snapshot)
    monkeypatch.setattr(openapi_contract, "CHANGELOG", changelog)
    monkeypatch.setattr(openapi_contract, "ROOT", tmp_path)

    added = copy.deepcopy(served)
    _user_create(added)["properties"]["nickname"] = {"type": "string"}
    monkeypatch.setattr(openapi_contract, "served_schema", lambda: added)
    assert openapi_contract.main(["check"]) == 1  # stale: the fix is `make openapi`
    assert openapi_contract.main(["write"]) == 0
    assert json.loads(snapshot.read_text()) == added
    assert openapi_contract.main(["check"]) == 0

    removed = copy.deepcopy(added)
    del _user_create(removed)["properties"]["password"]
    monkeypatch.setattr(openapi_contract, "served_schema", lambda: removed)
    assert openapi_contract.main(["write"]) == 1
    assert json.loads(snapshot.read_text()) == added  # refused: unchanged
    changelog.write_text(
        "# Changelog\n\n## Unreleased\n\n- Passwords are gone "
        "(`removed field: UserCreate.password`).\n"
    )
    assert openapi_contract.main(["write"]) == 0
    assert json.loads(snapshot.read_text()) == removed
