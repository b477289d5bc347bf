"""The committed API contract: docs/openapi.json, and what may change it.

    make openapi          # = python -m scripts.openapi_contract write
    python -m scripts.openapi_contract check

`write` regenerates docs/openapi.json from the app (default modules and settings, no .env
needed). It refuses a breaking change that CHANGELOG.md does not acknowledge: each breaking
change is one line (e.g. `removed field: UserCreate.email`); quoting that line
in CHANGELOG.md acknowledges it. `check` says whether the committed file is current.

What is breaking, for a client generated from the old file: a removed operation, parameter,
field, response or enum value; a newly required field or parameter; a changed type or
operation id; a response field that is no longer always present. Additions are not: a new
operation, an optional field or parameter, a new enum value in a request.
The tests (tests/test_openapi_snapshot.py) run the same checks in `make test`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "docs" / "openapi.json"
CHANGELOG = ROOT / "CHANGELOG.md"
DEFAULT_MODULES = ["users", "integrations"]
_METHODS = ("get", "put", "post", "delete", "patch")


def served_schema() -> dict[str, Any]:
    """What `/openapi.json` answers with the default modules and settings."""
    from app.factory import create_app
    from app.settings import CoreSettings

    settings = CoreSettings(
        environment="test",
        database_url="sqlite+aiosqlite:///:memory:",
        secret_key="openapi-snapshot-secret-key-0123456789abcdef",  # noqa: S106 - never signs anything
        modules=DEFAULT_MODULES,
        log_format="json",
        log_level="WARNING",
    )
    schema: dict[str, Any] = create_app(settings).openapi()
    return schema


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


class _Walk:
    """Compares one schema of the old document with its counterpart in the new one."""

    def __init__(self, old_doc: dict[str, Any], new_doc: dict[str, Any]) -> None:
        self.old_doc, self.new_doc = old_doc, new_doc
        self.found: list[str] = []
        self.seen: set[tuple[str, str, str, str]] = set()

    @staticmethod
    def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
        # `X | None` is anyOf [X, null]: compare X.
        branches = [b for b in schema.get("anyOf", []) if b.get("type") != "null"]
        return branches[0] if len(branches) == 1 else schema

    @staticmethod
    def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
        schema = _Walk._nullable(schema)
        while "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = _Walk._nullable(doc.get("components", {}).get("schemas", {}).get(name, {}))
        return schema

    def compare(self, old: dict[str, Any], new: dict[str, Any], where: str, request: bool) -> None:
        old_ref, new_ref = self._nullable(old).get("$ref"), self._nullable(new).get("$ref")
        if old_ref:
            # A named schema is reported once, by its name in the old document.
            where = old_ref.rsplit("/", 1)[-1]
        key = (
            old_ref or json.dumps(old, sort_keys=True),
            new_ref or json.dumps(new, sort_keys=True),
            where if not old_ref else "",
            str(request),
        )
        if key in self.seen:
            return
        self.seen.add(key)
        old, new = self._resolve(self.old_doc, old), self._resolve(self.new_doc, new)
        if old.get("type") and new.get("type") and old["type"] != new["type"]:
            self.found.append(f"changed type: {where} ({old['type']} → {new['type']})")
            return
        if "enum" in old:
            # A request that sent an old value, or a client that expects it in an answer.
            for value in old["enum"]:
                if value not in new.get("enum", old["enum"]):
                    self.found.append(f"removed enum value: {where} {value}")
        old_props, new_props = old.get("properties") or {}, new.get("properties") or {}
        old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
        for name, schema in old_props.items():
            if name not in new_props:
                self.found.append(f"removed field: {where}.{name}")
                continue
            if not request and name in old_required and name not in new_required:
                self.found.append(f"field no longer always present: {where}.{name}")
            self.compare(schema, new_props[name], f"{where}.{name}", request)
        if request:
            for name in sorted(new_required - old_required):
                if name in new_props:
                    self.found.append(f"newly required field: {where}.{name}")
        if "items" in old and "items" in new:
            self.compare(old["items"], new["items"], f"{where}[]", request)


def _body(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    content = (operation.get("requestBody") or {}).get("content") or {}
    return {media: spec.get("schema", {}) for media, spec in content.items()}


def _parameters(operation: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(p["in"], p["name"]): p for p in operation.get("parameters", []) if "name" in p}


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Every change from `old` to `new` that can break a client written against `old`."""
    walk = _Walk(old, new)
    found = walk.found
    for path, old_item in old.get("paths", {}).items():
        for method in _METHODS:
            if method not in old_item:
                continue
            op = f"{method.upper()} {path}"
            before, after = old_item[method], new.get("paths", {}).get(path, {}).get(method)
            if after is None:
                found.append(f"removed operation: {op}")
                continue
            if before.get("operationId") != after.get("operationId"):
                found.append(
                    f"changed operation id: {op} ({before.get('operationId')} → "
                    f"{after.get('operationId')})"
                )
            old_params, new_params = _parameters(before), _parameters(after)
            for (place, name), param in old_params.items():
                if (place, name) not in new_params:
                    found.append(f"removed parameter: {op} {place} {name}")
                else:
                    new_param = new_params[(place, name)]
                    walk.compare(
                        param.get("schema", {}),
                        new_param.get("schema", {}),
                        f"{op} {place} {name}",
                        request=True,
                    )
            for (place, name), param in new_params.items():
                was = old_params.get((place, name), {})
                if param.get("required") and not was.get("required"):
                    found.append(f"newly required parameter: {op} {place} {name}")
            old_body, new_body = _body(before), _body(after)
            if new_body and not old_body and (after.get("requestBody") or {}).get("required"):
                found.append(f"newly required body: {op}")
            for media, schema in old_body.items():
                if media not in new_body:
                    found.append(f"removed request media type: {op} {media}")
                else:
                    walk.compare(schema, new_body[media], f"{op} request", request=True)
            for status, response in (before.get("responses") or {}).items():
                new_response = (after.get("responses") or {}).get(status)
                if new_response is None:
                    if status.startswith("2"):
                        found.append(f"removed response: {op} {status}")
                    continue
                for media, spec in (response.get("content") or {}).items():
                    new_spec = (new_response.get("content") or {}).get(media)
                    if new_spec is None:
                        found.append(f"removed response media type: {op} {status} {media}")
                        continue
                    walk.compare(
                        spec.get("schema", {}),
                        new_spec.get("schema", {}),
                        f"{op} {status}",
                        request=False,
                    )
    return list(dict.fromkeys(found))


def unacknowledged(changes: list[str], changelog: str) -> list[str]:
    """The breaking changes the changelog does not quote."""
    return [change for change in changes if change not in changelog]


def changelog_text() -> str:
    return CHANGELOG.read_text(encoding="utf-8") if CHANGELOG.exists() else ""


def _explain(changes: list[str]) -> str:
    listed = "\n".join(f"  - `{change}`" for change in changes)
    return (
        f"breaking API change(s) not acknowledged in CHANGELOG.md:\n{listed}\n"
        "If deliberate, quote each line above in CHANGELOG.md (under `## Unreleased`, with why "
        "and what clients must do), then run `make openapi`. If not, restore what was removed."
    )


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    served = served_schema()
    committed = json.loads(SNAPSHOT.read_text(encoding="utf-8")) if SNAPSHOT.exists() else None
    unacked = unacknowledged(breaking_changes(committed or {}, served), changelog_text())
    if unacked:
        print(_explain(unacked), file=sys.stderr)
        return 1
    if command == "write":
        if served != committed:
            SNAPSHOT.write_text(render(served), encoding="utf-8")
            print(f"wrote {SNAPSHOT.relative_to(ROOT)}: commit it with the change")
        else:
            print(f"{SNAPSHOT.relative_to(ROOT)} is current")
        return 0
    if served != committed:
        print(
            "docs/openapi.json differs from the served schema: run `make openapi`", file=sys.stderr
        )
        return 1
    print("docs/openapi.json is current")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
