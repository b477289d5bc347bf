"""Another service trusting Gatehouse's access tokens offline, with only its public keys.

Run Gatehouse with ACCESS_TOKEN_ALGORITHM=ES256 (or EdDSA, RS256), then:
    GATEHOUSE_URL=http://127.0.0.1:8000 uvicorn docs.examples.verify_service:app --port 8001
"""

import os
from typing import Annotated, Any

import jwt
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

GATEHOUSE_URL = os.environ.get("GATEHOUSE_URL", "http://127.0.0.1:8000")
# Caches the keys; a token naming a kid it has not seen (a rotation) makes it fetch again.
jwks = jwt.PyJWKClient(f"{GATEHOUSE_URL}/.well-known/jwks.json", lifespan=300)
app = FastAPI()


def claims(token: Annotated[HTTPAuthorizationCredentials, Depends(HTTPBearer())]) -> dict[str, Any]:
    try:
        key = jwks.get_signing_key_from_jwt(token.credentials)  # chosen by the token's kid
        return jwt.decode(  # type: ignore[no-any-return]
            token.credentials,
            key,
            algorithms=[key.algorithm_name],  # the key's own algorithm, never the header's
            audience="gatehouse:access",
            issuer="gatehouse",
            options={"require": ["exp", "sub", "sid"]},
        )
    except jwt.PyJWTError:
        raise HTTPException(401, "invalid token", {"WWW-Authenticate": "Bearer"}) from None


@app.get("/whoami")
def whoami(token: Annotated[dict[str, Any], Depends(claims)]) -> dict[str, Any]:
    # As of the token's issue: up to ACCESS_TOKEN_TTL stale (Gatehouse checks live).
    return {"user_id": token["sub"], "roles": token["roles"], "scope": token["scope"].split()}
