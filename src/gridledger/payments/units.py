"""Money in integer units and its powers-of-two denominations.

Every price is a whole number of money units. With one coin value per power of
two, ``2**0 .. 2**(k-1)``, any amount below ``2**k`` is the sum of the distinct
denominations of its binary expansion, so a payer never needs change from the
payee (seed 003 §5.7 gap 5: seed 003 has one coin value, a piece).
"""

from __future__ import annotations

from typing import NewType

Money = NewType("Money", int)
"""An amount in the microgrid's money unit (e.g. a tenth of a cent); never a float."""

MAX_DENOMINATION_EXPONENT = 40
"""Largest coin is ``2**40`` units: far above any household's period bill."""


def is_power_of_two(value: int) -> bool:
    """True for 1, 2, 4, 8, ...: the only coin values the mint issues."""
    return value > 0 and value & (value - 1) == 0


def compute_denominations(amount: int) -> tuple[Money, ...]:
    """The binary expansion of ``amount``, largest coin first (``()`` for 0)."""
    if amount < 0:
        raise ValueError("amount must be non-negative")
    return tuple(
        Money(1 << bit) for bit in range(amount.bit_length() - 1, -1, -1) if amount >> bit & 1
    )
