"""/.well-known/jwks.json: the public keys other services verify access tokens with."""

from __future__ import annotations

from fastapi import APIRouter, Response

from modules.users.dependencies import RuntimeDep
from modules.users.schemas import JsonWebKeySet

# Verifiers may cache the set this long. The next key must be published at least this long
# before it signs (README: rotation), so every cache holds it by then; a verifier meeting an
# unknown kid refetches anyway (PyJWKClient does).
JWKS_MAX_AGE = 300

router = APIRouter()


@router.get(
    "/jwks.json",
    name="auth:jwks",
    summary="The public keys that verify access tokens (JWKS)",
    description=(
        "Empty while ACCESS_TOKEN_ALGORITHM=HS256 (only Gatehouse can verify those). With ES256, "
        "EdDSA or RS256: the signing key, the next key and the previous keys, each with its "
        "`kid` and `alg`. Public members only."
    ),
    response_model=JsonWebKeySet,
    response_model_exclude_none=True,
)
async def jwks(runtime: RuntimeDep, response: Response) -> JsonWebKeySet:
    response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE}"
    return JsonWebKeySet.model_validate(runtime.access_keys.jwks)
