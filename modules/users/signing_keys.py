"""The keys that sign and verify access tokens, and the JWKS that publishes the public ones.

`ACCESS_TOKEN_ALGORITHM=HS256` (the default) signs with the secret key: only Gatehouse can verify,
and its tokens carry no `kid`. ES256, EdDSA and RS256 sign with a private key (PKCS#8 PEM) whose
public half any service can fetch from `/.well-known/jwks.json`; every such token names its key
in `kid` (the key's RFC 7638 thumbprint, so the same key always gets the same id in every process).

Which key verifies a token is chosen by its `kid` alone, and each key verifies with its own
algorithm only: the header's `alg` never picks a key or an algorithm (RFC 8725 §3.1), so an HS256
token "signed" with a published public key, or `alg: none`, finds nothing to pass.

Rotation: the key that signs (current), keys that signed before and whose tokens may still be
live (previous), and the key that will sign next (next, published before it signs, so verifiers
that cache the JWKS already hold it on the day it starts). All three verify.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

Algorithm = Literal["HS256", "ES256", "EdDSA", "RS256"]
ASYMMETRIC: tuple[Algorithm, ...] = ("ES256", "EdDSA", "RS256")
MIN_RSA_BITS = 2048
GENERATED_RSA_BITS = 3072

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

# The members RFC 7638 hashes for each key type, in its (lexicographic) order.
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
}


_PUBLIC_MEMBERS = ("kty", "crv", "x", "y", "n", "e")


class KeyFileError(ValueError):
    """A key file is missing, unreadable or of the wrong kind; one line, naming the file."""


@dataclass(frozen=True)
class VerificationKey:
    """A public key, the one algorithm it verifies, and its published form."""

    kid: str
    algorithm: Algorithm
    public_key: PublicKey
    jwk: Mapping[str, str]


@dataclass(frozen=True)
class AccessTokenKeys:
    """What signs new access tokens and what verifies presented ones."""

    algorithm: Algorithm
    # HS256: the secret key (also what verifies HS256 tokens, which have no kid).
    secret: str
    # Asymmetric: the private key that signs and its kid; None with HS256.
    private_key: PrivateKey | None = None
    kid: str | None = None
    # Every key a `kid` may name: current, next and previous (HS256 may keep previous ones too,
    # when switching back from an asymmetric algorithm).
    by_kid: Mapping[str, VerificationKey] = field(default_factory=dict)

    @property
    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys, as `/.well-known/jwks.json` serves them (never a private member)."""
        return {"keys": [dict(key.jwk) for key in self.by_kid.values()]}


def algorithm_of(key: PrivateKey | PublicKey) -> Algorithm:
    """The one algorithm a key is used with; refuses keys this service does not sign with."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise KeyFileError(f"an EC key must be on P-256 for ES256 (got {key.curve.name})")
        return "ES256"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "EdDSA"
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise KeyFileError(f"an RSA key must have at least {MIN_RSA_BITS} bits")
        return "RS256"
    raise KeyFileError("not an EC P-256, Ed25519 or RSA key")


def public_jwk(public_key: PublicKey) -> dict[str, str]:
    """The JWK of a public key: built from the public key object, so it cannot hold d, p, q…"""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(public_key, as_dict=True)
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        jwk = OKPAlgorithm.to_jwk(public_key, as_dict=True)
    else:
        jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
    # The key's own members only: PyJWT adds `key_ops`, which RFC 7517 §4.3 says not to combine
    # with the `use` published beside it.
    return {name: str(jwk[name]) for name in _PUBLIC_MEMBERS if name in jwk}


def thumbprint(jwk: Mapping[str, str]) -> str:
    """RFC 7638: SHA-256 over the required members, sorted, no whitespace; base64url."""
    members = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def verification_key(public_key: PublicKey) -> VerificationKey:
    algorithm = algorithm_of(public_key)
    jwk = public_jwk(public_key)
    kid = thumbprint(jwk)
    published = {**jwk, "kid": kid, "alg": algorithm, "use": "sig"}
    return VerificationKey(kid=kid, algorithm=algorithm, public_key=public_key, jwk=published)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise KeyFileError(f"{path}: cannot be read ({reason})") from None


_PRIVATE_TYPES = (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey)
_PUBLIC_TYPES = (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, rsa.RSAPublicKey)


def _check_kind(path: Path, key: object, kinds: tuple[type, ...]) -> None:
    if not isinstance(key, kinds):
        raise KeyFileError(f"{path}: not an EC P-256, Ed25519 or RSA key")
    try:
        algorithm_of(key)  # type: ignore[arg-type]
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc}") from None


def read_private_key(path: Path) -> PrivateKey:
    """A PKCS#8 (or traditional) PEM private key without a passphrase."""
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KeyFileError(
            f"{path}: not a PEM private key without a passphrase (PKCS#8, "
            "e.g. `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`)"
        ) from None
    _check_kind(path, key, _PRIVATE_TYPES)
    return key  # type: ignore[return-value]


def read_public_key(path: Path) -> PublicKey:
    """A key that only verifies (previous, next): its private PEM, or just its public PEM."""
    data = _read(path)
    if b"PRIVATE KEY" in data:
        return read_private_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise KeyFileError(f"{path}: not a PEM private or public key") from None
    _check_kind(path, key, _PUBLIC_TYPES)
    return key  # type: ignore[return-value]


def generate_private_key(algorithm: Algorithm) -> PrivateKey:
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=GENERATED_RSA_BITS)
    raise ValueError(f"{algorithm} has no private key")


def private_key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def development_key_path(data_dir: Path, algorithm: Algorithm) -> Path:
    """One file per algorithm: switching algorithms in development never reuses a wrong key."""
    return data_dir / f"access_token_{algorithm.lower()}.pem"


def load_or_create_development_key(path: Path, algorithm: Algorithm) -> PrivateKey:
    """Generate the development key once, owner-readable only (like the secret key), so tokens
    and the JWKS survive restarts. Written whole to a temporary file, then linked into place:
    worker processes starting together never read a half-written key, and all use one key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        key = generate_private_key(algorithm)
        # mkstemp: a name of its own (mode 600) for each racer, threads of one process too.
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        temporary = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(private_key_pem(key))
            os.link(temporary, path)  # atomic, and refuses to replace a key already there
            return key
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            temporary.unlink(missing_ok=True)
    existing = read_private_key(path)
    if algorithm_of(existing) != algorithm:
        raise KeyFileError(f"{path}: holds a {algorithm_of(existing)} key, not {algorithm}")
    return existing


def load_access_token_keys(
    algorithm: Algorithm,
    secret: str,
    private_key_file: Path | None,
    previous_key_files: Sequence[Path] = (),
    next_key_file: Path | None = None,
    development_data_dir: Path | None = None,
) -> AccessTokenKeys:
    """Read every key file once (at start-up). `development_data_dir`: where a missing private
    key is generated (outside production only; None refuses a missing one)."""
    by_kid: dict[str, VerificationKey] = {}
    private_key: PrivateKey | None = None
    kid: str | None = None
    if algorithm in ASYMMETRIC:
        if private_key_file is not None:
            private_key = read_private_key(private_key_file)
            if algorithm_of(private_key) != algorithm:
                raise KeyFileError(
                    f"ACCESS_TOKEN_PRIVATE_KEY_FILE {private_key_file} holds a "
                    f"{algorithm_of(private_key)} key, but ACCESS_TOKEN_ALGORITHM={algorithm}"
                )
        elif development_data_dir is not None:
            private_key = load_or_create_development_key(
                development_key_path(development_data_dir, algorithm), algorithm
            )
        else:
            raise KeyFileError(
                f"ACCESS_TOKEN_ALGORITHM={algorithm} needs ACCESS_TOKEN_PRIVATE_KEY_FILE"
            )
        current = verification_key(private_key.public_key())
        kid = current.kid
        by_kid[current.kid] = current
    if next_key_file is not None:
        upcoming = verification_key(read_public_key(next_key_file))
        by_kid.setdefault(upcoming.kid, upcoming)
    for path in previous_key_files:
        previous = verification_key(read_public_key(path))
        by_kid.setdefault(previous.kid, previous)
    return AccessTokenKeys(
        algorithm=algorithm, secret=secret, private_key=private_key, kid=kid, by_kid=by_kid
    )
