"""Replica key files: Ed25519 private keys as unencrypted PKCS#8 PEM, mode 0600.

The key signs consensus envelopes and block votes. The file is created with
``O_EXCL`` and mode 0600 so that it is never world-readable, not even for an
instant; reading refuses a file that group or others can read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from gridledger.crypto.rng import SYSTEM_RNG, Rng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.errors import ConfigError


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 (``O_EXCL``: never overwrite, never world-readable)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path}: already exists") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create ({exc.strerror})") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def read_private_file(path: Path) -> bytes:
    """Read a secret file; :class:`ConfigError` if missing or readable by group/others."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path}: private file is readable by others (chmod 600 it)")
    return data


def write_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write ``key`` to a new file at ``path`` (mode 0600); refuse to overwrite."""
    pem = ed25519.Ed25519PrivateKey.from_private_bytes(key.seed()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private_file(path, pem)


def generate_key_file(path: Path, rng: Rng = SYSTEM_RNG) -> Ed25519PrivateKey:
    """Generate a fresh replica key and write it to ``path``."""
    key = Ed25519PrivateKey.generate(rng)
    write_key(path, key)
    return key


def read_key(path: Path) -> Ed25519PrivateKey:
    """Read a replica key; :class:`ConfigError` if missing, malformed or too open."""
    data = read_private_file(path)
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(loaded, ed25519.Ed25519PrivateKey):
        raise ConfigError(f"{path}: not an Ed25519 key")
    seed = loaded.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return Ed25519PrivateKey(seed)
