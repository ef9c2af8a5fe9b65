"""gridledger.sim: microgrid days on real household data, in simulated time.

Scenarios in TOML (:mod:`.scenario`), the UCI readings and TMY PV (:mod:`.data`),
households (:mod:`.households`), seed 003's fixed-piece market over its shared
bus (:mod:`.fixed_piece`, :mod:`.channel`, :mod:`.pairing`) and seed 000's
double auction (:mod:`.double_auction`), results and reports (:mod:`.results`,
:mod:`.report`, :mod:`.plots`), seed 003's Table 1 (:mod:`.reproduce`), sweeps
on Dask (:mod:`.sweep`) and the ``gridledger sim`` sub-commands (:mod:`.cli`).
See docs/simulator.md.
"""
