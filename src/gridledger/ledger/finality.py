"""Finality rules: when a block is final, and what proves it to someone who was not there.

The ledger does not know which consensus engine runs. Each engine brings a
:class:`FinalityRule`, named by the genesis (``GenesisConfig.engine``), which
says whether a proof makes a header final. Block import, state transfer, the
replica's own certificate store and the light client all call the rule, never
an engine.

Every rule shipped so far proves finality the same way, with a
:class:`~gridledger.ledger.certificate.CommitCertificate` (distinct validators'
signatures on the header hash) and differs in who may sign and how many must:

* ``pbft``: a byzantine quorum 2f+1 of the genesis validators, which executed
  the block and got this header;
* other engines register their own rule at import (the crash-fault-tolerant
  ordering service: a majority of the executing peers; DPoS: 2/3+1 of the
  producers confirming it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Protocol

from gridledger.errors import ConfigError
from gridledger.ledger.block import BlockHeader, GenesisConfig
from gridledger.ledger.certificate import (
    CertificateError,
    CommitCertificate,
    SignatureCheck,
    Validator,
    is_valid_vote_signature,
    verify_certificate,
)
from gridledger.ledger.quorum import compute_quorum

PBFT_ENGINE = "pbft"


class FinalityRule(Protocol):
    """Decides whether a proof makes a header final."""

    def check(self, header: BlockHeader, proof: CommitCertificate) -> None:
        """Raise :class:`CertificateError` unless ``proof`` finalises exactly ``header``."""
        ...


@dataclass(frozen=True)
class QuorumCertificateRule:
    """Final once ``threshold`` distinct ``validators`` signed the header hash.

    ``is_valid_signature`` checks each vote (an engine may pass one that remembers
    what it verified already)."""

    chain_id: str
    validators: tuple[Validator, ...]
    threshold: int
    is_valid_signature: SignatureCheck = is_valid_vote_signature

    def check(self, header: BlockHeader, proof: CommitCertificate) -> None:
        if proof.height != header.height or proof.header_hash != header.header_hash:
            raise CertificateError(f"certificate does not name the header at {header.height}")
        verify_certificate(
            proof,
            self.validators,
            chain_id=self.chain_id,
            threshold=self.threshold,
            is_valid_signature=self.is_valid_signature,
        )


RuleFactory = Callable[[GenesisConfig], FinalityRule]


def build_bft_rule(genesis: GenesisConfig) -> FinalityRule:
    """PBFT's rule: 2f+1 of the genesis validators."""
    n = len(genesis.validators)
    return QuorumCertificateRule(genesis.chain_id, genesis.validators, compute_quorum(n))


_factories: dict[str, RuleFactory] = {PBFT_ENGINE: build_bft_rule}


def register_finality_rule(engine: str, factory: RuleFactory) -> None:
    """Make ``engine``'s rule known (engines call this when their module is imported)."""
    _factories[engine] = factory


def _load_installed_engine(engine: str) -> None:
    """Import an installed engine (entry-point group ``gridledger.engines``): its module
    registers its rule, so a light client needs no import of the consensus layer."""
    for ep in entry_points(group="gridledger.engines"):
        if ep.name == engine:
            try:
                ep.load()
            except Exception as exc:  # a broken install is a configuration error
                raise ConfigError(f"engine {engine!r} ({ep.value}) does not load: {exc}") from exc


def get_finality_rule(genesis: GenesisConfig) -> FinalityRule:
    """The rule of the engine the genesis names; :class:`ConfigError` if none is known."""
    if genesis.engine not in _factories:
        _load_installed_engine(genesis.engine)
    factory = _factories.get(genesis.engine)
    if factory is None:
        raise ConfigError(
            f"no finality rule for consensus engine {genesis.engine!r} "
            f"(known: {', '.join(sorted(_factories))})"
        )
    return factory(genesis)
