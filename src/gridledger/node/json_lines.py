"""One JSON value per line: the framing of the client API, encoded with orjson.

A replica answers every ``submit`` with one JSON object per transaction, and
clients send every transaction to every replica, so a replica under load
encodes thousands of small objects a second; past saturation, most of them are
``busy`` answers. orjson (Rust, well kept, used by FastAPI) encodes them about
15 times faster than the standard library and parses about twice as fast; in
``benchmarks/ledger_load.py`` the standard library's encoder alone took about
9 % of a replica's Python time at three times its capacity.

What is accepted and produced stays JSON, with two differences from the
standard library, both on values no handler accepts anyway: on input, integers
beyond 64 bits read as floats and nesting stops at 1,024 levels (a
``ValueError``, as for any malformed line); on output, a value orjson cannot
encode (an integer beyond 64 bits, a non-text key) goes through the standard
library instead, so nothing that encoded before fails now.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def encode_line(value: Any) -> bytes:
    """``value`` as compact JSON followed by a newline.

    ``TypeError`` or ``ValueError`` if it cannot be encoded (a type JSON does not
    have, nesting beyond what the standard library's recursion allows: orjson
    reads 1,024 levels but writes 254, so a value read from a peer may not
    encode again).
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        try:
            return json.dumps(value, separators=(",", ":")).encode() + b"\n"
        except RecursionError:
            raise ValueError("value nested too deeply to encode") from None


def decode_line(line: bytes) -> Any:
    """The JSON value of one line; ``ValueError`` if it is not JSON."""
    return orjson.loads(line)


def encode_sorted(value: Any) -> bytes:
    """``value`` as JSON with sorted keys: equal values, equal bytes (to compare answers).

    Fails like :func:`encode_line`.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        try:
            return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
        except RecursionError:
            raise ValueError("value nested too deeply to encode") from None
