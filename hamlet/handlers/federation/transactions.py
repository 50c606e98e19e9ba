"""Inbound transactions: `PUT /_matrix/federation/v1/send/{txnId}`.

As Synapse: at most 50 PDUs and 100 EDUs (400 beyond); one transaction per
origin at a time (another transaction ID while one is in flight is 429, the
same one waits for and shares its answer); an answered transaction is
answered the same again, not applied twice: the answer is stored per
(origin, transaction ID) for a day, as Synapse's `received_transactions`,
before the 200 goes out, with the newest in a bounded cache in front. So a
server that retries after we were killed gets the answer it missed. The
PDUs are committed before the answer is stored; killed between the two, the
retry runs the transaction again, where a stored PDU is taken as it is and
EDUs tolerate the replay.

PDUs are handled first, then EDUs in order. EDUs go to the handler of their
type (unknown types are ignored). The rooms' server ACLs come first
(`server_acl.py`): a PDU of a room denying the origin is answered with an
error, its typing and receipts there are dropped. PDUs go to a `PduHandler`
(`inbound_pdus.py` checks them and hands them to the room DAG); PDUs of
rooms we are not in are left out of the answer, as Synapse does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson

from hamlet.core.canonical_json import JsonDict
from hamlet.handlers.common.errors import BadJsonError, MatrixError
from hamlet.handlers.common.service import ENTRY_BYTES, ServiceBase
from hamlet.handlers.federation.inbound_edus import EduHandler
from hamlet.runtime.clock import Clock, LoopingCall
from hamlet.runtime.lru import LruCache
from hamlet.storage.stores.received_transactions import ReceivedTransactionsStore

logger = logging.getLogger(__name__)

MAX_PDUS: Final = 50
MAX_EDUS: Final = 100
#: Answered transactions remembered per homeserver.
ANSWERS_CACHED: Final = 10_000
#: How long a stored answer is kept (Synapse: a day), and how often the older go.
ANSWERS_KEPT_MS: Final = 24 * 3600 * 1000
PRUNE_INTERVAL_S: Final = 3600.0
#: Longest transaction ID kept as a cache key; longer ones are refused.
MAX_TXN_ID_LENGTH: Final = 255


class PduHandler(Protocol):
    async def handle_pdus(self, origin: str, pdus: Sequence[Any]) -> dict[str, JsonDict]:
        """Each PDU's outcome by event ID: `{}` if accepted, `{"error": why}`
        if not. PDUs of rooms this server is not in may be left out."""
        ...


class RoomAcls(Protocol):
    """The rooms' server ACLs (`server_acl.py`), applied before anything is handled."""

    async def refuse_pdus(
        self, origin: str, pdus: Sequence[Any]
    ) -> tuple[list[Any], dict[str, JsonDict]]: ...

    async def filter_edu(self, origin: str, edu: Mapping[str, Any]) -> Mapping[str, Any] | None: ...


@dataclass(frozen=True, slots=True)
class Transaction:
    origin: str
    txn_id: str
    pdus: Sequence[Any]
    edus: Sequence[Mapping[str, Any]]


def _count_error(what: str, limit: int) -> MatrixError:
    return MatrixError(400, "M_BAD_JSON", f"A transaction holds at most {limit} {what}")


def parse_transaction(origin: str, txn_id: str, body: Mapping[str, Any]) -> Transaction:
    """The transaction in `body`, sent by the authenticated `origin`; 400 if malformed."""
    if not txn_id or len(txn_id) > MAX_TXN_ID_LENGTH:
        raise BadJsonError(f"Transaction IDs are 1 to {MAX_TXN_ID_LENGTH} characters")
    if body.get("origin") != origin:
        raise BadJsonError("The transaction's origin is not the server that signed it")
    pdus = body.get("pdus", [])
    edus = body.get("edus", [])
    if not isinstance(pdus, list) or not isinstance(edus, list):
        raise BadJsonError("'pdus' and 'edus' must be lists")
    if len(pdus) > MAX_PDUS:
        raise _count_error("PDUs", MAX_PDUS)
    if len(edus) > MAX_EDUS:
        raise _count_error("EDUs", MAX_EDUS)
    ts = body.get("origin_server_ts")
    if ts is not None and (not isinstance(ts, int) or isinstance(ts, bool)):
        raise BadJsonError("'origin_server_ts' must be an integer")
    valid_edus = []
    for edu in edus:
        # A malformed EDU is skipped, not fatal: the rest of the transaction counts.
        if (
            isinstance(edu, Mapping)
            and isinstance(edu.get("edu_type"), str)
            and isinstance(edu.get("content"), Mapping)
        ):
            valid_edus.append(edu)
        else:
            logger.info("Ignoring malformed EDU from %s in %s", origin, txn_id)
    return Transaction(origin, txn_id, pdus, valid_edus)


class TransactionHandler(ServiceBase):
    name = "federation_transactions"

    def __init__(
        self,
        clock: Clock,
        store: ReceivedTransactionsStore,
        pdus: PduHandler,
        edus: Mapping[str, EduHandler],
        *,
        acls: RoomAcls,
    ) -> None:
        self._clock = clock
        self._store = store
        self.pdus = pdus
        self._edus = dict(edus)
        self._acls = acls
        # origin -> (transaction ID, its answer to come) while in flight
        self._active: dict[str, tuple[str, asyncio.Future[JsonDict]]] = {}
        self._answers: LruCache[tuple[str, str], JsonDict] = LruCache(ANSWERS_CACHED)
        self._prune: LoopingCall | None = None

    def start(self) -> None:
        self._prune = self._clock.looping_call(self._prune_answers, PRUNE_INTERVAL_S)

    async def shutdown(self) -> None:
        if self._prune is not None:
            self._prune.stop()
            self._prune = None

    async def _prune_answers(self) -> None:
        await self._store.delete_older_than(self._clock.time_msec() - ANSWERS_KEPT_MS)

    def set_pdu_handler(self, pdus: PduHandler) -> None:
        """Plug in the PDU half (the room DAG's)."""
        self.pdus = pdus

    async def on_transaction(self, txn: Transaction) -> JsonDict:
        """The `/send` answer: `{"pdus": {event ID: result}}`."""
        answered = self._answers.get((txn.origin, txn.txn_id))
        if answered is not None:
            return answered
        active = self._active.get(txn.origin)
        if active is not None:
            active_id, answer = active
            if active_id != txn.txn_id:
                raise MatrixError(429, "M_UNKNOWN", "Too many concurrent transactions")
        else:
            # Detached from the request: a sender that gives up and retries
            # the same transaction waits for this run instead of a second one.
            answer = self._clock.run_in_background(self._process, txn)
            self._active[txn.origin] = (txn.txn_id, answer)
        return await asyncio.shield(answer)

    async def _process(self, txn: Transaction) -> JsonDict:
        try:
            stored = await self._store.get_answer(txn.origin, txn.txn_id)
            if stored is not None:
                answered: JsonDict = orjson.loads(stored)
                self._answers.set((txn.origin, txn.txn_id), answered)
                return answered
            pdus, pdu_results = await self._acls.refuse_pdus(txn.origin, txn.pdus)
            pdu_results.update(await self.pdus.handle_pdus(txn.origin, pdus))
            for edu in txn.edus:
                handler = self._edus.get(edu["edu_type"])
                if handler is None:
                    continue
                allowed = await self._acls.filter_edu(txn.origin, edu)
                if allowed is None:
                    continue
                try:
                    await handler(txn.origin, allowed["content"])
                except MatrixError as e:
                    logger.info("EDU %s from %s refused: %s", edu["edu_type"], txn.origin, e)
            result: JsonDict = {"pdus": pdu_results}
            await self._store.set_answer(
                txn.origin, txn.txn_id, orjson.dumps(result).decode(), self._clock.time_msec()
            )
            self._answers.set((txn.origin, txn.txn_id), result)
            return result
        finally:
            del self._active[txn.origin]

    def memory_usage(self) -> int:
        return ENTRY_BYTES * (len(self._answers) + len(self._active))

    def clear_caches(self) -> None:
        """Answers are kept: forgetting them would replay transactions."""
