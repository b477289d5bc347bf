"""Authentication by default.

Every router a module mounts without `public=True` depends on `authenticated`. The app itself
knows no users: a module (the users module) overrides this dependency with its own check. With
no such module loaded, non-public routes answer 401 rather than being silently open.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, status


async def authenticated() -> Any:
    raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED)
