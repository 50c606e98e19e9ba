"""The notary: other servers' keys as we know them, countersigned by us.

`/_matrix/key/v2/query` answers from the keyring's cache, fetching (through
the keyring, so with its sharing and backoff) when the cache does not
satisfy the query; a server that cannot be reached is answered with its
last response if there is one, as the spec asks. Anyone may ask, so the
query is bounded and the fetches it triggers are capped per homeserver.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from hamlet.core.canonical_json import JsonDict
from hamlet.core.crypto import SigningKey, sign_json
from hamlet.handlers.common.errors import InvalidParamError
from hamlet.handlers.common.service import ServiceBase
from hamlet.handlers.federation.keyring import Keyring
from hamlet.runtime.clock import Clock

#: Servers one query may name, and key IDs per server.
MAX_QUERY_SERVERS = 100
MAX_QUERY_KEY_IDS = 16
#: Key fetches queries may have running at once, per homeserver.
MAX_CONCURRENT_FETCHES = 8


@dataclass(frozen=True, slots=True)
class KeyQuery:
    """What is asked of one server's keys: these key IDs (none: all), valid
    until at least `min_valid_until_ts` (None: now)."""

    key_ids: tuple[str, ...] = ()
    min_valid_until_ts: int | None = None


class KeyNotary(ServiceBase):
    def __init__(
        self, *, server_name: str, clock: Clock, signing_key: SigningKey, keyring: Keyring
    ) -> None:
        self.server_name = server_name
        self.clock = clock
        self.signing_key = signing_key
        self.keyring = keyring
        self._fetch_slots = asyncio.Semaphore(MAX_CONCURRENT_FETCHES)

    async def query(self, queries: Mapping[str, KeyQuery]) -> list[JsonDict]:
        """The key responses of the servers queried, each signed by us.

        400 M_INVALID_PARAM beyond `MAX_QUERY_SERVERS` servers or
        `MAX_QUERY_KEY_IDS` key IDs for one server.
        """
        if len(queries) > MAX_QUERY_SERVERS:
            raise InvalidParamError(f"At most {MAX_QUERY_SERVERS} servers per key query")
        for server_name, query in queries.items():
            if len(query.key_ids) > MAX_QUERY_KEY_IDS:
                raise InvalidParamError(
                    f"At most {MAX_QUERY_KEY_IDS} key IDs per server ({server_name})"
                )
        answers = await asyncio.gather(
            *(self._answer(name, query) for name, query in queries.items())
        )
        return [response for response in answers if response is not None]

    async def _answer(self, server_name: str, query: KeyQuery) -> JsonDict | None:
        if server_name == self.server_name:
            return self.keyring.local_key_response()
        now = self.clock.time_msec()
        min_valid = now if query.min_valid_until_ts is None else query.min_valid_until_ts
        cached = await self.keyring.stored_response(server_name)
        if cached is not None:
            # The spec's advice to notaries: a response is served for half
            # its lifetime, then fetched again (and served stale only if
            # the server cannot be reached).
            half_life = max(cached.valid_until_ts - cached.added_ts, 0) // 2
            min_valid = max(min_valid, now + half_life)
        async with self._fetch_slots:
            await self.keyring.get_verify_keys(server_name, query.key_ids, min_valid)
        stored = await self.keyring.stored_response(server_name)
        if stored is None:
            return None
        return sign_json(stored.response, self.server_name, self.signing_key)
