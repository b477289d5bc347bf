"""ASGI entry point: `uvicorn app.main:app --reload`."""

import sys

from app.loader import ModuleLoadError
from app.settings import SettingsError

try:
    from app.factory import create_app

    app = create_app()
except (SettingsError, ModuleLoadError) as exc:
    # One clear line instead of a traceback, and a non-zero exit.
    print(f"gatehouse: {exc}", file=sys.stderr)
    raise SystemExit(1) from None
