"""The README and docs/ stand alone: every relative link resolves to a file of this repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# [text](target) — the target up to a space, a closing parenthesis or an anchor.
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)\s]*)?\)")


def _relative_links(document: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(document.read_text())
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto: ...
    ]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: str(d.relative_to(ROOT)))
def test_relative_links_stay_inside_the_repository(document: Path) -> None:
    for target in _relative_links(document):
        resolved = (document.parent / target).resolve()
        assert resolved.is_relative_to(ROOT), f"{document.name} links outside: {target}"
        assert resolved.exists(), f"{document.name} links to a missing file: {target}"


def test_the_readme_links_the_contract() -> None:
    assert "docs/api.md" in _relative_links(ROOT / "README.md")
