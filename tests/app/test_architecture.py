"""`make lint` (its import-linter step) fails when app/ imports a module or when a module
reaches into another module's internals, for every module, including one written today that
pyproject.toml has never heard of."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)},
        check=False,
    )


def _copy_tree(target: Path) -> Path:
    for name in ("app", "modules"):
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def test_contracts_hold_on_the_real_tree(tmp_path: Path) -> None:
    result = _lint(_copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_app_importing_a_module_breaks_the_contract(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    (tree / "app" / "sneaky.py").write_text("import modules.users  # noqa: F401\n")
    result = _lint(tree)
    assert result.returncode != 0
    assert "app/ never imports a concrete module BROKEN" in result.stdout


PUBLIC_SURFACE = "modules import each other only through their public surface (__init__) BROKEN"


def test_reaching_into_another_module_breaks_the_contract(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    (tree / "modules" / "users" / "sneaky.py").write_text(
        "import modules.integrations.settings  # noqa: F401\n"
    )
    result = _lint(tree)
    assert result.returncode != 0
    assert PUBLIC_SURFACE in result.stdout


def _new_module(tree: Path, name: str, source: str) -> None:
    """A module pyproject.toml does not name: the contracts must cover it all the same."""
    (tree / "modules" / name).mkdir()
    (tree / "modules" / name / "__init__.py").write_text('"""A new module."""\n')
    (tree / "modules" / name / "service.py").write_text(source)


def test_a_new_module_may_import_another_through_its_init(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    _new_module(tree, "billing", "from modules.users import CurrentUser  # noqa: F401\n")
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_new_module_reaching_into_users_breaks_the_contract(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    _new_module(tree, "billing", "from modules.users.models import User  # noqa: F401\n")
    result = _lint(tree)
    assert result.returncode != 0
    assert PUBLIC_SURFACE in result.stdout
    assert "modules.billing.service -> modules.users.models" in result.stdout


def test_app_importing_a_new_module_breaks_the_contract(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    _new_module(tree, "billing", '"""Nothing to see."""\n')
    (tree / "app" / "sneaky.py").write_text("import modules.billing  # noqa: F401\n")
    result = _lint(tree)
    assert result.returncode != 0
    assert "app/ never imports a concrete module BROKEN" in result.stdout
