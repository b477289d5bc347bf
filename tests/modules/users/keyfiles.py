"""Key files as an operator makes them (PKCS#8 PEM), for the asymmetric access-token tests."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from modules.users.settings import UsersSettings

Key = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


def new_key(algorithm: str) -> Key:
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    assert algorithm == "RS256"
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_key(path: Path, key: Key) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def public_pem(key: Key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_file(directory: Path, name: str, algorithm: str = "ES256") -> Path:
    return write_key(directory / f"{name}.pem", new_key(algorithm))


def signing_with(
    private_key_file: Path | None,
    algorithm: str = "ES256",
    previous: list[Path] | None = None,
    next_key: Path | None = None,
) -> UsersSettings:
    return UsersSettings(
        access_token_algorithm=algorithm,  # type: ignore[arg-type]
        access_token_private_key_file=private_key_file,
        access_token_previous_key_files=previous or [],
        access_token_next_key_file=next_key,
    )
