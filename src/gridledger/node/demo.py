"""The end-to-end demo behind ``gridledger demo`` (and ``make demo``).

It runs on an embedded default scenario with no server to install: every
step prints what happened and what each party learned.
"""

from __future__ import annotations

from rich.console import Console

from gridledger.crypto.encoding import decode, encode
from gridledger.crypto.encryption import EncryptionPrivateKey, open_sealed, seal
from gridledger.crypto.hashing import register_tag
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey

_DEMO_TAG = register_tag("gridledger/demo/record/1")


def run_demo(seed: int = 7, console: Console | None = None) -> None:
    """Walk through the system's steps on the default scenario."""
    out = console or Console()
    rng = DeterministicRng(seed)
    out.rule("gridledger demo")
    record = {"meter": "house-1", "slot": 12, "wh": 1500}
    data = encode(record)
    assert decode(data) == record
    key = Ed25519PrivateKey.generate(rng)
    sig = key.sign(_DEMO_TAG, data)
    key.public_key.verify(_DEMO_TAG, data, sig)
    out.print(f"canonical record: {data.hex()} ({len(data)} bytes), Ed25519 signature verified")
    receiver = EncryptionPrivateKey.generate(rng)
    sealed = seal(receiver.public_key, data, b"demo")
    assert open_sealed(receiver, sealed, b"demo") == data
    out.print(f"sealed to the receiver with HPKE: {len(sealed)} bytes, opened intact")
