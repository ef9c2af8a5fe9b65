"""A crash-fault-tolerant ordering service (NATS JetStream) behind the engine seam.

Importing the package registers the ``jetstream`` engine and its finality rule
(a majority of the replicas signed the header). The NATS client is in
:mod:`gridledger.consensus.ordering.nats_log`, used by the replica shell only.
"""

from gridledger.consensus.ordering import engine as engine
