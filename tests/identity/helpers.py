"""Test helpers: a cheating user, and a ledger to run the identity contract on."""

from __future__ import annotations

from gridledger.crypto.rng import Rng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.identity.contracts import IdentityConfig, IdentityContract
from gridledger.identity.messages import SignedCommitments
from gridledger.identity.registration import (
    RegistrationManager,
    UserRegistration,
    check_challenge,
    create_candidate,
    on_hello,
    sign_commitments,
    start_registration,
)
from gridledger.ledger.contracts import BlockContext, ContractRegistry
from gridledger.ledger.execution import Receipt, apply_block
from gridledger.ledger.state import WorldState, compute_state_key
from gridledger.ledger.tx import Transaction

from .conftest import NOW, Member, World


def cheat_commitments(
    world: World, rm: RegistrationManager, user: Member, round_: int, bad: int, rng: Rng
) -> tuple[UserRegistration, SignedCommitments]:
    """Candidate ``bad`` carries a tag naming another identity; all others are honest."""
    st, hello = start_registration(
        user.key, user.cert, world.roots, world.tc_key, world.rm.cert, round_, NOW, rng
    )
    ch = on_hello(rm, hello, NOW, rng)
    blind_key = check_challenge(st, ch, NOW)
    st.challenge, st.blind_key = ch, blind_key
    st.candidates = [
        create_candidate(st, blind_key, j, rng, identity=b"\x42" * 32 if j == bad else None)
        for j in range(ch.challenge.k)
    ]
    return st, sign_commitments(st, NOW)


class Chain:
    """One replica's state with the identity contract; blocks applied one transaction each."""

    def __init__(self, world: World) -> None:
        self.state = WorldState()
        config = IdentityConfig(world.roots, world.rm_blind.cert, world.tc_key)
        self.registry = ContractRegistry((IdentityContract(config),))
        self.height = 0
        self.nonce = 0

    def get(self, key: bytes) -> bytes | None:
        return self.state.get(compute_state_key("identity", key))

    def submit(
        self, kind: str, payload: object, signer: Ed25519PrivateKey, now: int = NOW
    ) -> Receipt:
        self.height += 1
        self.nonce += 1
        tx = Transaction.create("test-chain", kind, payload, signer, self.nonce)
        ctx = BlockContext("test-chain", self.height, now * 1000, 0)
        return apply_block(self.state, self.registry, [tx], ctx).receipts[0]
