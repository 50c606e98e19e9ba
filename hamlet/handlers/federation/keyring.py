"""Other servers' signing keys: looked up, fetched, checked and cached.

A key is looked up in memory, then in storage, and fetched only when what
is known does not answer the question (a key ID we have never seen, or one
not valid until the time asked). Fetching asks the configured notaries
(`trusted_key_servers`) in turn, then the server itself; every response
must be for the server asked about, signed by it (and by the notary that
passed it on) and bounded in size. Concurrent lookups for one server share
one fetch. A server is not asked again for a while after a fetch, a failed
one backing off exponentially, so a hostile server cannot make us hammer
it (or anyone) by signing with keys it never publishes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import nacl.signing

from hamlet.config import HomeServerConfig
from hamlet.config.model import TrustedKeyServer
from hamlet.core.canonical_json import JsonDict
from hamlet.core.crypto import SigningKey, decode_verify_key, verify_signed_json
from hamlet.core.errors import CoreError, SignatureError
from hamlet.core.event_signatures import key_validity_needed, required_signers
from hamlet.core.redaction import redact
from hamlet.core.room_versions import RoomVersion
from hamlet.core.server_keys import (
    KEY_ID_RE,
    KeyResponseError,
    PublishedKey,
    ServerKeys,
    build_key_response,
    parse_key_response,
)
from hamlet.handlers.common.errors import MatrixError
from hamlet.handlers.common.service import ENTRY_BYTES, ServiceBase
from hamlet.runtime.clock import Clock
from hamlet.runtime.lru import LruCache
from hamlet.storage.stores.server_keys import ServerKeyStore, StoredResponse

logger = logging.getLogger(__name__)

SERVER_KEYS_PATH = "/_matrix/key/v2/server"
QUERY_PATH = "/_matrix/key/v2/query"
FETCH_TIMEOUT_MS = 10_000
#: After a fetch that worked, the server is not asked again this soon, even
#: for a key ID it did not list.
REFETCH_INTERVAL_MS = 60_000
#: After a failed fetch: this long, doubling with each failure up to the max.
MIN_BACKOFF_MS = 60_000
MAX_BACKOFF_MS = 3600_000
#: Servers whose keys (and fetch timings) are held in memory.
CACHE_SERVERS = 10_000
#: Key IDs of one server a signed object may name: real servers sign with one.
MAX_SIGNATURES_PER_SERVER = 8
#: Responses a notary may return for one server.
MAX_NOTARY_RESPONSES = 16
#: A key valid "forever": our own current key, for lookups of our own name.
_FOREVER = 2**53 - 1


class KeyFetchTransport(Protocol):
    """What the keyring needs of the federation client."""

    async def get_json(
        self,
        destination: str,
        path: str,
        args: Mapping[str, str | list[str]] | None = None,
        *,
        timeout_ms: int | None = None,
    ) -> JsonDict: ...

    async def post_json(self, destination: str, path: str, body: JsonDict) -> JsonDict: ...


class SignatureVerifyError(MatrixError):
    """A signature did not verify, or no key to check it could be found.

    401 M_UNAUTHORIZED, as Synapse answers a request it cannot authenticate;
    callers checking events turn it into a rejection instead.
    """

    def __init__(self, message: str) -> None:
        super().__init__(401, "M_UNAUTHORIZED", message)


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """A server's public key and the time until which it may be used."""

    key_id: str
    key: nacl.signing.VerifyKey
    valid_until_ts: int


@dataclass(frozen=True, slots=True)
class _Wanted:
    """What the lookup that starts a fetch asked for."""

    server_name: str
    key_ids: tuple[str, ...]
    min_valid_until_ms: int
    via_notaries: bool


@dataclass(slots=True)
class _FetchState:
    next_attempt_ms: int
    failures: int = 0


class Keyring(ServiceBase):
    def __init__(
        self,
        *,
        config: HomeServerConfig,
        clock: Clock,
        signing_key: SigningKey,
        store: ServerKeyStore,
        transport: KeyFetchTransport | None,
    ) -> None:
        self.server_name = config.server_name
        self.clock = clock
        self.signing_key = signing_key
        self.store = store
        #: None: no outbound federation client, so only our own keys and
        #: what storage already holds are known.
        self.transport = transport
        self._notaries = config.trusted_key_servers
        self._refresh_ms = config.key_refresh_interval
        self._own_keys: dict[str, VerifyKey] = {
            signing_key.key_id: VerifyKey(signing_key.key_id, signing_key.verify_key, _FOREVER)
        }
        for old in config.old_signing_keys:
            if old.key_id != signing_key.key_id:
                key = decode_verify_key(old.key_base64)
                self._own_keys[old.key_id] = VerifyKey(old.key_id, key, old.expired_ts)
        self._old_keys = config.old_signing_keys
        self._own_response: JsonDict | None = None
        self._cache: LruCache[str, dict[str, VerifyKey]] = LruCache(CACHE_SERVERS)
        self._fetch_state: LruCache[str, _FetchState] = LruCache(CACHE_SERVERS)
        self._fetches: dict[tuple[str, bool], asyncio.Task[None]] = {}

    # -- our own keys ------------------------------------------------------

    def local_key_response(self) -> JsonDict:
        """Our `/_matrix/key/v2/server` object, valid for `key_refresh_interval`.

        Signed once and reused until half its validity has passed (as
        Synapse does), so a flood of key requests costs no signatures.
        """
        now = self.clock.time_msec()
        response = self._own_response
        if response is None or now >= response["valid_until_ts"] - self._refresh_ms // 2:
            response = build_key_response(
                self.server_name, self.signing_key, self._old_keys, now + self._refresh_ms
            )
            self._own_response = response
        return response

    # -- lookups -----------------------------------------------------------

    async def get_verify_keys(
        self, server_name: str, key_ids: Collection[str], min_valid_until_ms: int
    ) -> dict[str, VerifyKey]:
        """`server_name`'s keys among `key_ids` (all its keys if empty) that
        are valid until at least `min_valid_until_ms`, fetching them if what
        is known does not have them. Keys that cannot be found are missing
        from the answer; a failed fetch is logged, not raised."""
        return await self._get_keys(server_name, key_ids, min_valid_until_ms, via_notaries=True)

    async def _get_keys(
        self,
        server_name: str,
        key_ids: Collection[str],
        min_valid_until_ms: int,
        *,
        via_notaries: bool,
    ) -> dict[str, VerifyKey]:
        if server_name == self.server_name:
            return _usable(self._own_keys, key_ids, min_valid_until_ms)
        keys = await self._known_keys(server_name)
        in_flight = (server_name, via_notaries) in self._fetches
        if not _answers(keys, key_ids, min_valid_until_ms) and (
            in_flight or self._may_fetch(server_name)
        ):
            await self._shared_fetch(
                _Wanted(server_name, tuple(key_ids), min_valid_until_ms, via_notaries)
            )
            keys = await self._known_keys(server_name)
        return _usable(keys, key_ids, min_valid_until_ms)

    async def stored_response(self, server_name: str) -> StoredResponse | None:
        """The last key response received for `server_name`, as received."""
        return await self.store.get_response(server_name)

    async def verify_json_for_server(
        self, server_name: str, obj: Mapping[str, Any], min_valid_until_ms: int
    ) -> None:
        """Check `server_name` signed `obj` with a key valid at `min_valid_until_ms`.

        Signatures with keys we cannot find are skipped, but at least one
        must be checked and every one checked must verify; raises
        `SignatureVerifyError` otherwise.
        """
        signatures = obj.get("signatures")
        server_sigs = signatures.get(server_name) if isinstance(signatures, Mapping) else None
        if not isinstance(server_sigs, Mapping) or not server_sigs:
            raise SignatureVerifyError(f"Not signed by {server_name}")
        key_ids = [k for k in server_sigs if isinstance(k, str) and KEY_ID_RE.match(k)]
        if len(key_ids) > MAX_SIGNATURES_PER_SERVER:
            raise SignatureVerifyError(f"Too many signatures from {server_name}")
        keys = await self.get_verify_keys(server_name, key_ids, min_valid_until_ms)
        if not keys:
            raise SignatureVerifyError(
                f"No key of {server_name} valid for this signature ({', '.join(key_ids)})"
            )
        try:
            verify_signed_json(obj, server_name, {k.key_id: k.key for k in keys.values()})
        except SignatureError as exc:
            raise SignatureVerifyError(f"Invalid signature from {server_name}: {exc}") from exc

    async def verify_event_signatures(
        self, pdu: Mapping[str, Any], room_version: RoomVersion
    ) -> None:
        """Check every signature a received event must carry (see
        `core.event_signatures`), over its redacted form, with keys valid
        when it was sent (from room version 5). Raises `SignatureVerifyError`."""
        try:
            signers = required_signers(pdu, room_version)
            min_valid_until_ms = key_validity_needed(pdu, room_version)
        except SignatureError as exc:
            raise SignatureVerifyError(str(exc)) from exc
        redacted = redact(pdu, room_version)
        for server_name in sorted(signers):
            await self.verify_json_for_server(server_name, redacted, min_valid_until_ms)

    # -- cache -------------------------------------------------------------

    async def _known_keys(self, server_name: str) -> dict[str, VerifyKey]:
        keys = self._cache.get(server_name)
        if keys is None:
            loaded = await self._load_keys(server_name)
            # A fetch may have finished during the read: its keys are newer.
            keys = self._cache.get(server_name)
            if keys is None:
                keys = loaded
                self._cache.set(server_name, keys)
        return keys

    async def _load_keys(self, server_name: str) -> dict[str, VerifyKey]:
        keys = {}
        for row in await self.store.get_keys(server_name):
            try:
                key = decode_verify_key(row.key_base64)
            except CoreError:
                continue
            keys[row.key_id] = VerifyKey(row.key_id, key, row.valid_until_ts)
        return keys

    def _may_fetch(self, server_name: str) -> bool:
        if self.transport is None:
            return False
        state = self._fetch_state.get(server_name)
        return state is None or self.clock.time_msec() >= state.next_attempt_ms

    # -- fetching ----------------------------------------------------------

    async def _shared_fetch(self, want: _Wanted) -> None:
        """Join the running fetch of `want.server_name`, or start one.

        The fetch is the homeserver's background work, not the first
        caller's: a caller that gives up stops waiting (`shield`), and the
        others (and the cache) still get the answer.
        """
        # A notary's own keys are fetched from it directly (`via_notaries`
        # False); keeping those fetches apart means two notaries without
        # configured keys never wait on each other.
        flight = (want.server_name, want.via_notaries)
        task = self._fetches.get(flight)
        if task is None:
            task = self.clock.run_as_background_process("fetch_server_keys", self._fetch, want)
            self._fetches[flight] = task
            task.add_done_callback(lambda _t: self._fetches.pop(flight, None))
        await asyncio.shield(task)

    async def _fetch(self, want: _Wanted) -> None:
        """Ask the notaries in turn, then the server itself, until an answer
        has what `want` needs (else keep the last good answer), and record it."""
        server_name = want.server_name
        sources: list[tuple[str, Callable[[], Awaitable[ServerKeys]]]] = []
        if want.via_notaries:
            sources += [
                (notary.server_name, functools.partial(self._fetch_via_notary, notary, want))
                for notary in self._notaries
                if notary.server_name != server_name
            ]
        sources.append((server_name, functools.partial(self._fetch_direct, server_name)))
        found: tuple[ServerKeys, str] | None = None
        for source, fetch in sources:
            keys = await self._try(source, server_name, fetch())
            if keys is not None:
                found = (keys, source)
                if _answers(keys.keys, want.key_ids, want.min_valid_until_ms):
                    break
        now = self.clock.time_msec()
        state = self._fetch_state.get(server_name) or _FetchState(now)
        if found is None:
            state.failures += 1
            backoff = min(MIN_BACKOFF_MS << min(state.failures - 1, 16), MAX_BACKOFF_MS)
            state.next_attempt_ms = now + backoff
            self._fetch_state.set(server_name, state)
            return
        await self.store.store_keys(*found, now)
        # Set, not dropped: a lookup whose read raced the store must not
        # cache what it read before it.
        self._cache.set(server_name, await self._load_keys(server_name))
        self._fetch_state.set(server_name, _FetchState(now + REFETCH_INTERVAL_MS))

    async def _try(
        self, source: str, server_name: str, fetch: Awaitable[ServerKeys]
    ) -> ServerKeys | None:
        """`await fetch`, or None (logged) if it failed in any way: a remote
        server's failures are its own, never our caller's 500."""
        try:
            result = await fetch
        except asyncio.CancelledError:
            raise
        except (KeyResponseError, SignatureError) as exc:
            logger.warning("Bad keys for %s from %s: %s", server_name, source, exc)
            return None
        except Exception as exc:
            logger.warning("Fetching keys for %s from %s failed: %r", server_name, source, exc)
            return None
        return result

    async def _fetch_direct(self, server_name: str) -> ServerKeys:
        assert self.transport is not None
        response = await self.transport.get_json(
            server_name, SERVER_KEYS_PATH, timeout_ms=FETCH_TIMEOUT_MS
        )
        return parse_key_response(response, server_name, self.clock.time_msec())

    async def _fetch_via_notary(self, notary: TrustedKeyServer, want: _Wanted) -> ServerKeys:
        assert self.transport is not None
        server_name = want.server_name
        # The notary answers with every key it has for the server; the key
        # IDs asked for only tell it how fresh its answer must be.
        criteria = {
            kid: {"minimum_valid_until_ts": want.min_valid_until_ms} for kid in want.key_ids
        }
        body: JsonDict = {"server_keys": {server_name: criteria}}
        answer = await self.transport.post_json(notary.server_name, QUERY_PATH, body)
        responses = answer.get("server_keys") if isinstance(answer, Mapping) else None
        if not isinstance(responses, list) or len(responses) > MAX_NOTARY_RESPONSES:
            raise KeyResponseError("notary answer has no bounded server_keys list")
        notary_keys = await self._notary_keys(notary)
        if not notary_keys:
            raise KeyResponseError(f"no keys of notary {notary.server_name} to check it with")
        now = self.clock.time_msec()
        best: ServerKeys | None = None
        for response in responses:
            if not isinstance(response, Mapping) or response.get("server_name") != server_name:
                continue
            keys = parse_key_response(response, server_name, now)
            verify_signed_json(response, notary.server_name, notary_keys)
            if best is None or keys.valid_until_ts > best.valid_until_ts:
                best = keys
        if best is None:
            raise KeyResponseError(f"notary {notary.server_name} has no keys for {server_name}")
        return best

    async def _notary_keys(self, notary: TrustedKeyServer) -> dict[str, nacl.signing.VerifyKey]:
        if notary.verify_keys is not None:
            return {kid: decode_verify_key(b64) for kid, b64 in notary.verify_keys}
        keys = await self._get_keys(
            notary.server_name, (), self.clock.time_msec(), via_notaries=False
        )
        return {k.key_id: k.key for k in keys.values()}

    # -- service -----------------------------------------------------------

    def clear_caches(self) -> None:
        self._cache.clear()

    def memory_usage(self) -> int:
        return (len(self._cache) + len(self._fetch_state)) * ENTRY_BYTES


def _answers(
    keys: Mapping[str, VerifyKey | PublishedKey], key_ids: Collection[str], min_valid: int
) -> bool:
    if not key_ids:
        return any(k.valid_until_ts >= min_valid for k in keys.values())
    return all(kid in keys and keys[kid].valid_until_ts >= min_valid for kid in key_ids)


def _usable(
    keys: Mapping[str, VerifyKey], key_ids: Collection[str], min_valid: int
) -> dict[str, VerifyKey]:
    wanted = key_ids or keys.keys()
    return {
        kid: keys[kid] for kid in wanted if kid in keys and keys[kid].valid_until_ts >= min_valid
    }
