"""Errors of the consensus layer::

    ConsensusError                 (gridledger.errors)
    ├── BadEnvelope                an envelope failed authentication or decoding (``reason``)
    ├── ConfigInvalid              a PbftConfig is inconsistent (``reason``)
    └── TransportError             (consensus/transport.py) a frame could not be sent/received

The PBFT handlers never raise on bad input from the network: they count the
rejection in ``ReplicaState.rejected`` under the same short reasons.
"""

from __future__ import annotations

from gridledger.errors import ConsensusError


class BadEnvelope(ConsensusError):
    """An envelope is from an unknown sender, carries a bad signature, or is malformed.

    ``reason`` is one of ``"unknown-sender"``, ``"bad-signature"``, ``"malformed"``.
    """


class ConfigInvalid(ConsensusError):
    """A :class:`~gridledger.consensus.pbft.PbftConfig` is inconsistent (names the field)."""
