"""Asking other servers for the hierarchy of a space's room this server is
not in (`GET /_matrix/federation/v1/hierarchy/{roomId}`), for the client
`/hierarchy`.

Bounded whatever the other servers do: at most `MAX_VIA` servers tried per
room, each request cut off after `REQUEST_TIMEOUT_MS`, the walk's own
request budget, and answers (failures too) kept for `CACHE_MS` so a page
of the client's walk, or the next client, does not ask again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final
from urllib.parse import quote

from hamlet.handlers.common.service import ENTRY_BYTES, ServiceBase
from hamlet.handlers.federation.keyring import KeyFetchTransport
from hamlet.handlers.spaces.remote import MAX_VIA, RemoteAnswer, RequestBudget, parse_answer
from hamlet.runtime.clock import Clock
from hamlet.runtime.lru import LruCache

logger = logging.getLogger(__name__)

FEDERATION_V1: Final = "/_matrix/federation/v1"
#: How long an answer (or a failure to get one) is kept, and for how many rooms.
CACHE_MS: Final = 60_000
ROOMS_CACHED: Final = 1000
#: One server's time to answer.
REQUEST_TIMEOUT_MS: Final = 10_000
#: Rough size of one cached answer.
ANSWER_BYTES: Final = 20 * ENTRY_BYTES


class FederationHierarchy(ServiceBase):
    name = "federation_hierarchy"

    def __init__(self, *, server_name: str, clock: Clock, transport: KeyFetchTransport) -> None:
        self._server_name = server_name
        self._clock = clock
        self._transport = transport
        self._cache: LruCache[tuple[str, bool], tuple[int, RemoteAnswer | None]] = LruCache(
            ROOMS_CACHED
        )

    async def fetch(
        self, room_id: str, via: Sequence[str], suggested_only: bool, budget: RequestBudget
    ) -> RemoteAnswer | None:
        key = (room_id, suggested_only)
        now = self._clock.time_msec()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < CACHE_MS:
            return cached[1]
        path = f"{FEDERATION_V1}/hierarchy/{quote(room_id, safe='')}"
        args = {"suggested_only": "true" if suggested_only else "false"}
        asked = False
        for server in [v for v in via if v != self._server_name][:MAX_VIA]:
            if not budget.take():
                break
            asked = True
            try:
                raw = await self._transport.get_json(
                    server, path, args, timeout_ms=REQUEST_TIMEOUT_MS
                )
            except Exception as e:
                # Any failure of one server (down, refusing, garbage) lets the next try.
                logger.info("Hierarchy of %s from %s failed: %s", room_id, server, e)
                continue
            answer = parse_answer(room_id, raw, suggested_only)
            if answer is not None:
                self._cache.set(key, (now, answer))
                return answer
            logger.info("Hierarchy of %s from %s: unusable answer", room_id, server)
        if asked:
            self._cache.set(key, (now, None))
        return None

    def memory_usage(self) -> int:
        return ANSWER_BYTES * len(self._cache)

    def clear_caches(self) -> None:
        self._cache.clear()
