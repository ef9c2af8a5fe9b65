"""Named integer types of the consensus layer (no runtime cost: ``typing.NewType``).

A view, a sequence number and a replica id are all plain ``int`` on the wire;
naming them lets a signature say which one it means (``get_primary(view) ->
ReplicaId``) and lets mypy catch a seq passed where a view is expected.
"""

from __future__ import annotations

from typing import NewType

View = NewType("View", int)
SeqNo = NewType("SeqNo", int)
ReplicaId = NewType("ReplicaId", int)

__all__ = ["ReplicaId", "SeqNo", "View"]
