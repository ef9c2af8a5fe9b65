"""Delegated proof of stake (seed 002) behind the engine seam.

Importing the package registers the ``dpos`` engine and its finality rule; the
contract that records slots and runs elections is the plugin
:data:`gridledger.consensus.dpos.contract.PLUGIN`. See ``docs/protocols/consensus.md``.
"""

from gridledger.consensus.dpos import engine as engine
from gridledger.consensus.dpos import finality as finality
