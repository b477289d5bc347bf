"""The access-token key settings: production refuses to start without a private key file,
development generates one (mode 600, kept across restarts), bad files are named at start-up."""

from __future__ import annotations

import os
import re
import secrets
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import RSAAlgorithm

from app.settings import CoreSettings, SettingsError
from modules.users.runtime import open_access_keys
from modules.users.settings import UsersSettings
from modules.users.signing_keys import load_or_create_development_key, verification_key
from tests.app.processes import run
from tests.conftest import TEST_SECRET
from tests.helpers import free_port
from tests.modules.users.keyfiles import key_file, write_key


def test_production_with_an_asymmetric_algorithm_and_no_key_file_refuses_to_start(
    tmp_path: Path,
) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "ENVIRONMENT": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "PUBLIC_URL": "https://auth.example.com",
        "MAIL_URL": "smtps://relay.example.com:465",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/prod.db",
        "DATA_DIR": str(tmp_path / "data"),
        "ACCESS_TOKEN_ALGORITHM": "ES256",
    }
    result = run(["uvicorn", "app.main:app", "--port", str(free_port())], env)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gatehouse: module 'users': "), lines
    assert "ACCESS_TOKEN_ALGORITHM=ES256 needs ACCESS_TOKEN_PRIVATE_KEY_FILE" in lines[0]
    # Nothing was generated: production never makes its own signing key.
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").iterdir())


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_development_generates_the_private_key_once_owner_readable(
    tmp_path: Path, algorithm: str
) -> None:
    core = CoreSettings(environment="development", secret_key=TEST_SECRET, data_dir=tmp_path)
    users = UsersSettings(access_token_algorithm=algorithm)  # type: ignore[arg-type]
    first = open_access_keys(core, users, TEST_SECRET)
    (generated,) = tmp_path.iterdir()
    assert stat.S_IMODE(generated.stat().st_mode) == 0o600
    assert generated.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert first.algorithm == algorithm and first.kid in first.by_kid
    # A restart reads the same key: same kid, tokens and caches survive.
    assert open_access_keys(core, users, TEST_SECRET).kid == first.kid


def test_production_never_generates_a_key(tmp_path: Path) -> None:
    core = CoreSettings(
        environment="production",
        secret_key=secrets.token_urlsafe(48),
        public_url="https://auth.example.com",
        data_dir=tmp_path,
    )
    users = UsersSettings.model_construct(  # as if validated elsewhere: the runtime checks too
        **{**UsersSettings().model_dump(), "access_token_algorithm": "ES256"}
    )
    with pytest.raises(SettingsError, match="needs ACCESS_TOKEN_PRIVATE_KEY_FILE"):
        open_access_keys(core, users, TEST_SECRET)
    assert list(tmp_path.iterdir()) == []


def test_bad_key_files_are_refused_naming_the_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    cases: list[tuple[dict[str, object], str]] = [
        ({"access_token_private_key_file": garbage}, f"{garbage}: not a PEM private key"),
        ({"access_token_private_key_file": tmp_path / "missing.pem"}, "cannot be read"),
        (
            {"access_token_private_key_file": key_file(tmp_path, "rsa", "RS256")},
            "holds a RS256 key, but ACCESS_TOKEN_ALGORITHM=ES256",
        ),
        ({"access_token_previous_key_files": str(garbage)}, f"{garbage}: not a PEM"),
        ({"access_token_next_key_file": garbage}, f"{garbage}: not a PEM"),
    ]
    small_rsa = write_key(tmp_path / "small.pem", rsa.generate_private_key(65537, 1024))  # noqa: S505 - refused
    p384 = write_key(tmp_path / "p384.pem", ec.generate_private_key(ec.SECP384R1()))
    cases += [
        ({"access_token_private_key_file": small_rsa}, "at least 2048 bits"),
        ({"access_token_private_key_file": p384}, "must be on P-256"),
    ]
    with pytest.raises(ValueError, match="ACCESS_TOKEN_PRIVATE_KEY_FILE is set but"):
        UsersSettings(access_token_private_key_file=key_file(tmp_path, "forgot-the-algorithm"))
    for fields, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            UsersSettings(access_token_algorithm="ES256", **fields)  # type: ignore[arg-type]


def test_previous_key_files_are_a_comma_separated_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = key_file(tmp_path, "a"), key_file(tmp_path, "b", "EdDSA")
    monkeypatch.setenv("ACCESS_TOKEN_PREVIOUS_KEY_FILES", f"{first}, {second}")
    users = UsersSettings()
    assert users.access_token_previous_key_files == [first, second]
    core = CoreSettings(environment="test", secret_key=TEST_SECRET, data_dir=tmp_path / "d")
    keys = open_access_keys(core, users, TEST_SECRET)
    assert keys.algorithm == "HS256" and keys.private_key is None
    assert sorted(k.algorithm for k in keys.by_kid.values()) == ["ES256", "EdDSA"]
    assert not (tmp_path / "d").exists()  # HS256 generates no key


# RFC 7638 §3.1: the example key and its thumbprint.
RFC_7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPeb"
    "WKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368Q"
    "QMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2"
    "NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)


def test_the_kid_is_the_rfc_7638_thumbprint() -> None:
    public_key = RSAAlgorithm.from_jwk({"kty": "RSA", "n": RFC_7638_N, "e": "AQAB"})
    assert isinstance(public_key, rsa.RSAPublicKey)
    key = verification_key(public_key)
    assert key.kid == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert dict(key.jwk) == {
        "kty": "RSA",
        "n": RFC_7638_N,
        "e": "AQAB",
        "kid": key.kid,
        "alg": "RS256",
        "use": "sig",
    }


def test_processes_starting_together_share_one_generated_key(tmp_path: Path) -> None:
    """Workers of `serve --workers N` start at once: none reads a half-written key, all sign
    with the same one (threads here, racing on the same file with a barrier)."""
    path = tmp_path / "access_token_es256.pem"
    racers = 8
    barrier = threading.Barrier(racers)

    def start() -> str:
        barrier.wait()
        return verification_key(load_or_create_development_key(path, "ES256").public_key()).kid

    with ThreadPoolExecutor(racers) as pool:
        kids = list(pool.map(lambda _: start(), range(racers)))
    assert len(set(kids)) == 1
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
