"""The trading day with its 4 replicas as separate processes over loopback TCP.

The same scenario and seed give the same trades and bills as the in-process day;
the simulation clock jumps block time only on a simulation chain; a replica that
dies is one clear line; no replica process outlives its chain.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridledger.crypto.encoding import decode_as
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.errors import ConfigError
from gridledger.ledger.block import Block
from gridledger.ledger.contracts_builtin import KV_SET_KIND, KvSet
from gridledger.ledger.tx import Transaction
from gridledger.node.config import load_config
from gridledger.node.consortium import init_consortium
from gridledger.node.replica import Replica
from gridledger.node.sim_clock import SimulationClock
from gridledger.node.simnet import SIM_CHAIN, make_keys
from gridledger.sim.day_demo import check_day
from gridledger.sim.process_chain import ProcessChain, get_free_ports
from gridledger.sim.scenario import load_default_scenario
from gridledger.sim.trading_day import DayResult, TradingDayError, run_trading_day

pytestmark = pytest.mark.slow

HOURS = range(10, 13)
HOUR_MS = 3_600_000
EPOCH_MS = 1_180_648_800_000  # 2007-06-01 00:00 UTC, the default scenario's day


def _replica_children() -> list[int]:
    """Replica processes (``node run``) whose parent is this test process and still run."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        state, ppid = stat[0], int(stat[1])
        if ppid == os.getpid() and state != "Z" and b"node" in cmdline and b"run" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def both_days() -> tuple[DayResult, DayResult]:
    scenario = load_default_scenario()
    in_process = run_trading_day(scenario, households=4, hours=HOURS, k=8)
    processes = run_trading_day(scenario, households=4, hours=HOURS, k=8, replicas="processes")
    return in_process, processes


def test_processes_give_the_in_process_day(both_days: tuple[DayResult, DayResult]) -> None:
    in_process, processes = both_days
    assert processes.trades and processes.trades == in_process.trades
    assert processes.households == in_process.households  # bills, energy, coins
    assert processes.hourly == in_process.hourly
    assert processes.conservation == in_process.conservation
    assert (processes.reneger, processes.traced) == (in_process.reneger, in_process.traced)
    assert processes.traced is not None and processes.trustees_used == 3
    assert processes.refused_orders == in_process.refused_orders
    assert processes.transactions == in_process.transactions
    assert processes.heights_agree and processes.blocks > 0
    assert processes.consensus_messages > 0
    assert check_day(processes) == []  # one head, coins conserved, bills add up


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_no_replica_process_outlives_the_day(both_days: tuple[DayResult, DayResult]) -> None:
    assert _replica_children() == []


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ProcessChain]:
    """A bare simulation chain (no contract sections) on 4 replica processes."""
    c = ProcessChain(tmp_path / "c", make_keys(4, 3), {}, EPOCH_MS, max_tx_bytes=64 * 1024)
    try:
        c.start()
        assert c.procs is not None
        started = list(c.procs.procs.values())
        yield c
    finally:
        c.close()
    assert all(p.poll() is not None for p in started)  # every replica stopped


def _kv_tx(i: int) -> Transaction:
    key = Ed25519PrivateKey(bytes([i + 1]) * 32)
    return Transaction.create(SIM_CHAIN, KV_SET_KIND, KvSet(b"k%d" % i, b"v"), key, 1)


def _block_time(chain: ProcessChain, height: int) -> int:
    answer = chain.read_agreed("block", {"height": height})
    return decode_as(Block, bytes.fromhex(answer["block"])).header.timestamp_ms


def test_the_clock_jumps_block_time_and_never_goes_back(chain: ProcessChain) -> None:
    (first,) = chain.submit([_kv_tx(0)])
    assert EPOCH_MS < _block_time(chain, first["height"]) < EPOCH_MS + 60_000
    chain.at(EPOCH_MS + 5 * HOUR_MS)  # five simulated hours later, in no wall time
    (second,) = chain.submit([_kv_tx(1)])
    stamp = _block_time(chain, second["height"])
    assert EPOCH_MS + 5 * HOUR_MS <= stamp < EPOCH_MS + 5 * HOUR_MS + 60_000
    # a client that tries to wind the clock back is refused by every replica
    lower = {"offset_ms": chain.offset_ms - 1}
    answers = chain._run(chain._get_client().call_all("sim_clock", lower))
    assert all("never goes back" in str(a) for a in answers.values())
    (third,) = chain.submit([_kv_tx(2)])
    assert _block_time(chain, third["height"]) > stamp
    # reads are agreed by f+1 replicas, keys and ordered scans alike
    view = chain.view("test")
    assert [k for k, _ in view.scan(b"k")] == [b"k0", b"k1", b"k2"]
    assert view.get(b"k1") == b"v"


def test_a_dead_replica_is_one_clear_line(chain: ProcessChain) -> None:
    assert chain.procs is not None
    chain.procs.kill_replica(2)
    with pytest.raises(TradingDayError, match=r"^replica 2 exited with code -9: .*node-2\.log"):
        chain.at(EPOCH_MS + HOUR_MS)


def _production_config(tmp_path: Path) -> Path:
    ports = get_free_ports(8)
    layout = init_consortium(
        tmp_path / "prod",
        4,
        ports=[(ports[2 * i], ports[2 * i + 1]) for i in range(4)],
        identity=None,
        plugins=(),
    )
    return layout.configs[0]


def test_a_production_chain_refuses_the_simulation_clock(tmp_path: Path) -> None:
    config = _production_config(tmp_path)
    with pytest.raises(ConfigError, match="not a simulation chain"):
        Replica(load_config(config), clock=SimulationClock(0))
    replica = Replica(load_config(config))  # on its wall clock there is no clock request
    try:
        assert "sim_clock" not in replica.api.methods and "scan" in replica.api.methods
    finally:
        replica.store.close()


def test_the_cli_refuses_the_simulation_clock_in_one_line(tmp_path: Path) -> None:
    from gridledger.cli.main import app

    config = _production_config(tmp_path)
    result = CliRunner().invoke(
        app, ["node", "run", str(config), "--simulation-clock-offset-ms", "-1000"]
    )
    assert result.exit_code == 2
    assert "not a simulation chain" in result.output
    assert "Traceback" not in result.output


def test_the_simulation_clock_only_moves_forward() -> None:
    wall = [1_000]
    clock = SimulationClock(-500, wall=lambda: wall[0])
    assert clock.now_ms() == 500
    wall[0] = 900  # the wall clock stepped back: the simulation clock does not
    assert clock.now_ms() == 500
    assert clock.advance(10_000) == 10_900
    with pytest.raises(ConfigError, match="never goes back"):
        clock.advance(9_999)
    assert clock.now_ms() == 10_900


def test_an_unknown_replica_mode_is_refused() -> None:
    with pytest.raises(TradingDayError, match="replicas must be one of"):
        run_trading_day(load_default_scenario(), households=1, replicas="threads")  # type: ignore[arg-type]


def test_a_taken_port_is_retried_then_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from gridledger.sim import process_chain

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]

    def ports_with_a_taken_one(count: int) -> list[int]:
        return [taken, *get_free_ports(count - 1)]  # replica 0's port is always taken

    monkeypatch.setattr(process_chain, "get_free_ports", ports_with_a_taken_one)
    chain = ProcessChain(tmp_path / "c", make_keys(4, 3), {}, EPOCH_MS, max_tx_bytes=64 * 1024)
    try:
        with pytest.raises(TradingDayError, match=r"^no free ports after 3 attempts: replica 0 "):
            chain.start()
    finally:
        chain.close()
        squatter.close()
    assert len(list(tmp_path.glob("c/consortium-*"))) == 3


def test_the_fixed_piece_day_with_processes_gives_the_in_process_day() -> None:
    """Seed 003's market over TCP: the same pairings, bills and tracing as in process."""
    scenario = load_default_scenario()
    in_process = run_trading_day(scenario, households=4, hours=HOURS, k=8, market="fixed-piece")
    processes = run_trading_day(
        scenario, households=4, hours=HOURS, k=8, market="fixed-piece", replicas="processes"
    )
    assert processes.market == in_process.market == "fixed-piece"
    assert processes.trades and processes.trades == in_process.trades
    assert processes.households == in_process.households
    assert (processes.reneger, processes.traced) == (in_process.reneger, in_process.traced)
    assert processes.transactions == in_process.transactions
    assert processes.heights_agree
