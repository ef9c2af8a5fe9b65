"""A client of the consortium: talks to every replica's API, trusts f+1 matching answers.

With at most f faulty replicas, f+1 identical answers include at least one
from an honest replica, so the answer is correct (the PBFT client rule, seed
000 step 3). :meth:`ConsortiumClient.call_agreed` sends the same request to
every replica and returns as soon as f+1 results are equal; every wait is
bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from gridledger.errors import NodeError
from gridledger.node.api import MAX_LINE
from gridledger.node.config import Address
from gridledger.node.json_lines import decode_line, encode_line, encode_sorted

MAX_BUSY_RETRIES = 5  # resends of a transaction a replica refused as busy
_DECIDED = ("committed", "rejected", "dropped")
# Refusals at intake that depend on the chain's state: a client cannot check them itself.
_STATE_REFUSALS = ("replayed-nonce", "nonce-too-old")


class ClientError(NodeError):
    """A replica could not be reached, answered with an error, or replicas disagreed."""


class ApiConnection:
    """One persistent, pipelined connection to one replica's API."""

    def __init__(self, address: Address) -> None:
        self.address = address
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._pump: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def connect(self, timeout: float = 5.0) -> None:
        async with self._lock:
            if self._writer is not None and not self._writer.is_closing():
                return
            try:
                self._reader, self._writer = await asyncio.wait_for(
                    asyncio.open_connection(self.address.host, self.address.port, limit=MAX_LINE),
                    timeout,
                )
            except (OSError, TimeoutError) as exc:
                raise ClientError(f"cannot reach replica at {self.address}: {exc}") from None
            self._pump = asyncio.create_task(self._read_answers())

    async def _read_answers(self) -> None:
        assert self._reader is not None
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                answer = decode_line(line)
                if not isinstance(answer, dict):
                    break  # not an answer of this protocol: the replica is faulty
                request_id = answer.get("id")
                if not isinstance(request_id, int):
                    continue  # an answer to no request of ours (or a malformed one)
                fut = self._pending.pop(request_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(answer)
        except (ConnectionError, OSError, ValueError):
            pass
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ClientError(f"connection to {self.address} closed"))
            self._pending.clear()
            if self._writer is not None:
                self._writer.close()
            self._writer = None

    async def call(self, method: str, params: dict[str, Any], timeout: float = 10.0) -> Any:
        """Send one request and return its ``result`` (``ClientError`` on error or timeout)."""
        await self.connect(timeout)
        writer = self._writer
        if writer is None:
            raise ClientError(f"connection to {self.address} closed")
        request_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = fut
        line = encode_line({"id": request_id, "method": method, "params": params})
        try:
            writer.write(line)
            await writer.drain()
            answer = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise ClientError(f"{method} on {self.address} timed out after {timeout}s") from None
        except (ConnectionError, OSError) as exc:
            raise ClientError(f"connection to {self.address} failed: {exc}") from None
        finally:
            self._pending.pop(request_id, None)
        if "error" in answer:
            raise ClientError(f"replica at {self.address}: {answer['error']}")
        return answer.get("result")

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump


class ConsortiumClient:
    """Connections to all n replicas; f+1 agreement on answers."""

    def __init__(self, apis: dict[int, Address]) -> None:
        self.conns = {rid: ApiConnection(addr) for rid, addr in sorted(apis.items())}
        self.n = len(apis)
        self.f = (self.n - 1) // 3

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.conns.values()))

    async def call(
        self, replica: int, method: str, params: dict[str, Any], timeout: float = 10.0
    ) -> Any:
        return await self.conns[replica].call(method, params, timeout)

    async def call_all(
        self, method: str, params: dict[str, Any], timeout: float = 10.0
    ) -> dict[int, Any]:
        """Ask every replica; failed ones map to their :class:`ClientError`."""
        results = await asyncio.gather(
            *(c.call(method, params, timeout) for c in self.conns.values()),
            return_exceptions=True,
        )
        out: dict[int, Any] = {}
        for rid, res in zip(self.conns, results, strict=True):
            if isinstance(res, BaseException) and not isinstance(res, ClientError):
                raise res
            out[rid] = res
        return out

    async def call_agreed(self, method: str, params: dict[str, Any], timeout: float = 10.0) -> Any:
        """Send to all replicas; return the first result that f+1 of them gave."""
        need = self.f + 1
        tasks = [asyncio.create_task(c.call(method, params, timeout)) for c in self.conns.values()]
        votes: Counter[bytes] = Counter()
        errors: list[str] = []
        try:
            for next_done in asyncio.as_completed(tasks, timeout=timeout + 1.0):
                try:
                    result = await next_done
                except ClientError as exc:
                    errors.append(exc.reason)
                    continue
                try:
                    key = encode_sorted(result)
                except (TypeError, ValueError) as exc:  # what a faulty replica answered
                    errors.append(f"unusable answer: {exc}")
                    continue
                votes[key] += 1
                if votes[key] >= need:
                    return result
        except TimeoutError:
            pass
        finally:
            for task in tasks:
                task.cancel()
        detail = f"; errors: {errors[0]}" if errors else ""
        raise ClientError(f"no {need} replicas agreed on {method}{detail}")

    async def submit_via_primary(
        self, txs: list[bytes], tx_hashes: list[bytes], primary: int, *, timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        """Send a batch to the primary only; f other replicas report their receipts by hash.

        The PBFT client's normal case: the f+1 matching receipts come from the primary
        and f backups. If they do not agree in time, fall back to :meth:`submit` (all
        replicas get the batch, so the backups' timers can replace a faulty primary).
        Transactions answered ``busy`` are sent again (:meth:`_retry_busy`).
        """

        async def once(batch: list[int], left: float) -> list[dict[str, Any]]:
            answer = await self.call(
                primary,
                "submit",
                {"txs": [txs[i].hex() for i in batch], "wait": True, "timeout": left},
                left + 5.0,
            )
            receipts: list[dict[str, Any]] = answer["receipts"]
            if any(r.get("error") in _STATE_REFUSALS for r in receipts):
                # the primary alone says the chain refuses them: ask every replica
                return await self._submit_once([txs[i] for i in batch], left)
            # the backups vouch for what the primary says was decided (not for refusals)
            decided = [k for k, r in enumerate(receipts) if r.get("status") in _DECIDED]
            hashes = [tx_hashes[batch[k]].hex() for k in decided]
            others = [r for r in self.conns if r != primary][: self.f]
            if hashes:
                results = await asyncio.gather(
                    *(
                        self.call(r, "wait", {"hashes": hashes, "timeout": left}, left + 5.0)
                        for r in others
                    ),
                    return_exceptions=True,
                )
                mine = [receipts[k] for k in decided]
                agreeing = [r for r in results if isinstance(r, dict) and r["receipts"] == mine]
                if len(agreeing) < self.f:
                    return await self._submit_once([txs[i] for i in batch], left)
            return receipts

        return await self._retry_busy(len(txs), timeout, once)

    async def submit(self, txs: list[bytes], *, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Submit transactions to every replica; receipts once f+1 replicas agree on them.

        Transactions answered ``busy`` are sent again (:meth:`_retry_busy`).
        """

        async def once(batch: list[int], left: float) -> list[dict[str, Any]]:
            return await self._submit_once([txs[i] for i in batch], left)

        return await self._retry_busy(len(txs), timeout, once)

    async def _submit_once(self, txs: list[bytes], timeout: float) -> list[dict[str, Any]]:
        params = {"txs": [tx.hex() for tx in txs], "wait": True, "timeout": timeout}
        result = await self.call_agreed("submit", params, timeout + 5.0)
        receipts: list[dict[str, Any]] = result["receipts"]
        return receipts

    async def _retry_busy(
        self,
        count: int,
        timeout: float,
        once: Callable[[list[int], float], Awaitable[list[dict[str, Any]]]],
    ) -> list[dict[str, Any]]:
        """Run ``once`` on every transaction, then again on those answered ``busy``.

        A replica at its admission bound keeps nothing of a refused transaction and
        says when to come back (``retry_after_ms``); this client does, at most
        :data:`MAX_BUSY_RETRIES` times and within ``timeout``. What is still ``busy``
        after that is returned as such.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        answers: list[dict[str, Any]] = [{} for _ in range(count)]
        todo = list(range(count))
        for _attempt in range(MAX_BUSY_RETRIES + 1):
            receipts = await once(todo, max(0.1, deadline - loop.time()))
            for i, receipt in zip(todo, receipts, strict=True):
                answers[i] = receipt
            busy = [i for i in todo if answers[i].get("status") == "busy"]
            wait_s = max((answers[i].get("retry_after_ms", 200) for i in busy), default=0) / 1000
            if not busy or loop.time() + wait_s >= deadline:
                break
            await asyncio.sleep(wait_s)
            todo = busy
        return answers
