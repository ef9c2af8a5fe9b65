"""Units of the market: integers in named units, never floats.

* :data:`WattHour` - energy; an order's quantity is a multiple of the lot.
* :data:`Price` - money units per watt-hour (the payments layer's ``Money``
  unit divided by Wh); a price is a multiple of the tick.
* :data:`Money` - what a trade costs: ``price * quantity``.
* :data:`Millis` - block time and slot boundaries, in milliseconds since the epoch.

With ``Money`` in micro-euro, 0.25 EUR/kWh is ``Price(250)`` and the default
tick of 1 is 0.001 EUR/kWh, the tick of the parameter register (§9 #7).
"""

from __future__ import annotations

from typing import NewType

WattHour = NewType("WattHour", int)
Price = NewType("Price", int)
Money = NewType("Money", int)
Millis = NewType("Millis", int)

BUY = 0
SELL = 1
