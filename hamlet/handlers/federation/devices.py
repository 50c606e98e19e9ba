"""Other servers' users' devices: asking for their keys, and keeping their
device lists current.

A local client's /keys/query or /keys/claim for remote users becomes one
`/user/keys/query` or `/user/keys/claim` per server, all at once, each
within the client's timeout: a server that fails, is slow or answers
garbage goes into `failures` under its name, the others still answer.

As Synapse, the device lists of remote users who share a room with a local
user are cached (their server then tells us of changes with
`m.device_list_update` and `m.signing_key_update` EDUs), so a query for
them costs no request; a list is dropped once no room is shared (at the
next query for the user, or by the prune every 10 minutes). An update
whose `prev_id`s we have not all seen means we missed one: the list is
fetched whole again (`/user/devices`) in the background. Every change is
written to the local device list stream, so local clients see the user in
`device_lists.changed`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Final, Protocol, TypeVar
from urllib.parse import quote

from hamlet.core.ids import UserID, get_domain_from_id
from hamlet.handlers.common.errors import MatrixError
from hamlet.handlers.common.room_access import RoomSharing
from hamlet.handlers.common.service import ServiceBase
from hamlet.handlers.e2ee.keys import RemoteAnswer
from hamlet.handlers.federation.keyring import KeyFetchTransport
from hamlet.handlers.federation.sender.transport import http_status
from hamlet.runtime.clock import Clock
from hamlet.runtime.timeout import with_timeout
from hamlet.storage.stores.remote_devices import RemoteDeviceList, RemoteDevicesStore

logger = logging.getLogger(__name__)

T = TypeVar("T")

FEDERATION_V1: Final = "/_matrix/federation/v1"
#: What a remote server's answer may make us keep or pass on, per user.
MAX_REMOTE_DEVICES: Final = 1000
MAX_ID_LENGTH: Final = 255
MAX_PREV_IDS: Final = 100
#: Resyncs running at once, and waiting at most (beyond: the cached list
#: is dropped and fetched when next asked for).
MAX_CONCURRENT_RESYNCS: Final = 5
MAX_PENDING_RESYNCS: Final = 1000
RESYNC_TIMEOUT_MS: Final = 30_000
#: How long a signature upload waits for the signed user's server.
DEFAULT_MASTER_KEY_TIMEOUT_MS: Final = 10_000
#: How often the lists of users no longer sharing a room are dropped.
PRUNE_INTERVAL_S: Final = 600.0
CROSS_SIGNING_TYPES: Final = {"master_key": "master", "self_signing_key": "self_signing"}
CROSS_SIGNING_FIELDS: Final = {"master_keys": "master", "self_signing_keys": "self_signing"}


class DeviceListChanges(Protocol):
    async def devices_changed(self, user_id: str, device_ids: Collection[str] = ()) -> None: ...


class _Failure(Exception):
    """A server's answer we cannot use."""


def _failure_json(error: BaseException) -> dict[str, Any]:
    if isinstance(error, TimeoutError):
        return {"status": 504, "message": "Timed out"}
    status = http_status(error)
    if status is not None:
        return {"status": status, "message": f"Remote server answered {status}"}
    return {"status": 503, "message": f"Failed to reach remote server: {error}"[:300]}


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH


def _device_keys(user_id: str, device_id: str, keys: Any) -> dict[str, Any] | None:
    """`keys` if they are a device's keys for this user and device."""
    if (
        isinstance(keys, dict)
        and keys.get("user_id") == user_id
        and keys.get("device_id") == device_id
        and isinstance(keys.get("keys"), dict)
    ):
        return keys
    return None


def _cross_signing_key(user_id: str, key: Any) -> dict[str, Any] | None:
    if (
        isinstance(key, dict)
        and key.get("user_id") == user_id
        and isinstance(key.get("keys"), dict)
    ):
        return key
    return None


def _list_from_query(user_id: str, answer: Mapping[str, Any]) -> RemoteDeviceList:
    """A user's device list from a `/user/keys/query` answer (no position)."""
    found = RemoteDeviceList(user_id, None)
    devices = answer.get("device_keys", {}).get(user_id)
    if isinstance(devices, dict):
        for device_id, keys in list(devices.items())[:MAX_REMOTE_DEVICES]:
            checked = _device_keys(user_id, device_id, keys)
            if checked is not None:
                found.devices[device_id] = checked
    for field_name, key_type in CROSS_SIGNING_FIELDS.items():
        by_user = answer.get(field_name)
        key = _cross_signing_key(
            user_id, by_user.get(user_id) if isinstance(by_user, dict) else None
        )
        if key is not None:
            found.cross_signing[key_type] = key
    return found


def _list_from_devices(user_id: str, answer: Mapping[str, Any]) -> RemoteDeviceList:
    """A user's device list from a `/user/devices/{userId}` answer."""
    stream_id = answer.get("stream_id")
    devices = answer.get("devices")
    if (
        answer.get("user_id") != user_id
        or not isinstance(stream_id, int)
        or isinstance(stream_id, bool)
        or not isinstance(devices, list)
    ):
        raise _Failure("not a device list")
    found = RemoteDeviceList(user_id, stream_id)
    for device in devices[:MAX_REMOTE_DEVICES]:
        if not isinstance(device, dict) or not _is_id(device.get("device_id")):
            continue
        device_id = device["device_id"]
        found.devices[device_id] = _device_keys(user_id, device_id, device.get("keys"))
    for field_name, key_type in CROSS_SIGNING_TYPES.items():
        key = _cross_signing_key(user_id, answer.get(field_name))
        if key is not None:
            found.cross_signing[key_type] = key
    return found


def _as_query_answer(found: RemoteDeviceList, wanted: Sequence[str]) -> dict[str, Any]:
    """A cached list as the fields of a /keys/query answer."""
    devices = {
        d: k for d, k in found.devices.items() if k is not None and (not wanted or d in wanted)
    }
    out: dict[str, Any] = {"device_keys": {found.user_id: devices}}
    for field_name, key_type in CROSS_SIGNING_FIELDS.items():
        if key_type in found.cross_signing:
            out[field_name] = {found.user_id: found.cross_signing[key_type]}
    return out


def _merge(into: dict[str, Any], answer: Mapping[str, Any]) -> None:
    for name, by_user in answer.items():
        into.setdefault(name, {}).update(by_user)


def _by_server(items: Mapping[str, T]) -> dict[str, dict[str, T]]:
    out: dict[str, dict[str, T]] = {}
    for user_id, value in items.items():
        out.setdefault(get_domain_from_id(user_id), {})[user_id] = value
    return out


class RemoteDeviceLists(ServiceBase):
    name = "remote_device_lists"

    def __init__(
        self,
        *,
        server_name: str,
        clock: Clock,
        transport: KeyFetchTransport,
        store: RemoteDevicesStore,
        sharing: RoomSharing,
        device_lists: DeviceListChanges,
    ) -> None:
        self._server_name = server_name
        self._clock = clock
        self._transport = transport
        self._store = store
        self._sharing = sharing
        self._device_lists = device_lists
        self._resync_slots = asyncio.Semaphore(MAX_CONCURRENT_RESYNCS)
        self._resyncing: set[str] = set()

    def start(self) -> None:
        self._clock.looping_call(self._prune, PRUNE_INTERVAL_S)

    async def _prune(self) -> None:
        """Their servers no longer tell us of changes: a list kept past the
        last shared room would be served stale once a room is shared again."""
        dropped = await self._store.forget_unshared(self._server_name)
        if dropped:
            logger.info("Dropped %d remote device lists no longer shared", dropped)

    async def _tracked(self, user_id: str) -> bool:
        """Whether a local user shares a room with `user_id` (so its server
        tells us of its device changes)."""
        sharing = await self._sharing.users_sharing_rooms(user_id)
        return any(get_domain_from_id(u) == self._server_name for u in sharing)

    async def _each_server(
        self,
        by_server: Mapping[str, T],
        ask: Callable[[str, T], Awaitable[dict[str, Any]]],
        timeout_ms: int,
    ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        """`ask` every server at once, each within the timeout: (answers, failures)."""

        async def one(server: str, what: T) -> tuple[str, dict[str, Any] | BaseException]:
            try:
                return server, await with_timeout(ask(server, what), timeout_ms / 1000, self._clock)
            except MatrixError as e:
                return server, e
            except Exception as e:
                logger.info("Asking %s for keys failed: %s", server, e)
                return server, e

        results = await asyncio.gather(*(one(s, w) for s, w in by_server.items()))
        answers: dict[str, dict[str, Any]] = {}
        failures: dict[str, Any] = {}
        for server, result in results:
            if isinstance(result, BaseException):
                failures[server] = _failure_json(result)
            else:
                answers[server] = result
        return answers, failures

    # --- /keys/query ---

    async def query(
        self, device_keys: Mapping[str, Sequence[str]], timeout_ms: int
    ) -> RemoteAnswer:
        out = RemoteAnswer()
        cached = await self._store.get_lists(list(device_keys))
        to_fetch: dict[str, list[str]] = {}
        for user_id, wanted in device_keys.items():
            found = cached.get(user_id)
            if found is not None and await self._tracked(user_id):
                _merge(out.keys, _as_query_answer(found, wanted))
            else:
                if found is not None:
                    # No longer told of its changes: the copy may go stale.
                    await self._store.forget(user_id)
                to_fetch[user_id] = list(wanted)
        asked = _by_server(to_fetch)
        answers, out.failures = await self._each_server(asked, self._ask_keys, timeout_ms)
        for server, answer in answers.items():
            for user_id, wanted in asked[server].items():
                found = _list_from_query(user_id, answer)
                _merge(out.keys, _as_query_answer(found, wanted))
                if not wanted and await self._tracked(user_id):
                    await self._store.replace_list(found, self._clock.time_msec())
        return out

    async def _ask_keys(self, server: str, queries: dict[str, list[str]]) -> dict[str, Any]:
        answer = await self._transport.post_json(
            server, f"{FEDERATION_V1}/user/keys/query", {"device_keys": queries}
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("device_keys"), dict):
            raise _Failure("no device_keys in the answer")
        return answer

    async def master_key(self, user_id: str) -> dict[str, Any] | None:
        """A remote user's master key, for a local user signing it."""
        answer = await self.query({user_id: []}, DEFAULT_MASTER_KEY_TIMEOUT_MS)
        key = answer.keys.get("master_keys", {}).get(user_id)
        return key if isinstance(key, dict) else None

    # --- /keys/claim ---

    async def claim(
        self, one_time_keys: Mapping[str, Mapping[str, str]], timeout_ms: int
    ) -> RemoteAnswer:
        out = RemoteAnswer()
        asked = _by_server(one_time_keys)
        answers, out.failures = await self._each_server(asked, self._ask_claim, timeout_ms)
        claimed: dict[str, Any] = {}
        for server, answer in answers.items():
            for user_id, devices in asked[server].items():
                by_device = answer.get(user_id)
                if not isinstance(by_device, dict):
                    continue
                keys = {
                    d: k
                    for d, k in by_device.items()
                    if d in devices and isinstance(k, dict) and len(k) <= 1
                }
                if keys:
                    claimed[user_id] = keys
        out.keys["one_time_keys"] = claimed
        return out

    async def _ask_claim(self, server: str, claims: dict[str, Mapping[str, str]]) -> dict[str, Any]:
        answer = await self._transport.post_json(
            server,
            f"{FEDERATION_V1}/user/keys/claim",
            {"one_time_keys": {u: dict(d) for u, d in claims.items()}},
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("one_time_keys"), dict):
            raise _Failure("no one_time_keys in the answer")
        one_time_keys: dict[str, Any] = answer["one_time_keys"]
        return one_time_keys

    # --- EDUs ---

    async def on_device_list_update(self, origin: str, content: Mapping[str, Any]) -> None:
        user_id = content.get("user_id")
        device_id = content.get("device_id")
        stream_id = content.get("stream_id")
        prev_ids = content.get("prev_id", [])
        if not isinstance(user_id, str) or not UserID.is_valid(user_id):
            return
        if get_domain_from_id(user_id) != origin:
            logger.info("Ignoring device list update from %s for %s", origin, user_id)
            return
        if not isinstance(device_id, str) or not _is_id(device_id):
            return
        if not isinstance(stream_id, int) or isinstance(stream_id, bool):
            return
        if not isinstance(prev_ids, list) or len(prev_ids) > MAX_PREV_IDS:
            return
        if not all(isinstance(p, int) and not isinstance(p, bool) for p in prev_ids):
            return
        if not await self._tracked(user_id):
            logger.info("Ignoring device list update for %s: no room shared", user_id)
            return
        cached, position = await self._store.get_stream_id(user_id)
        if cached and position is not None and stream_id <= position:
            return
        if cached and position is not None and prev_ids and max(prev_ids) <= position:
            deleted = content.get("deleted") is True
            keys = None if deleted else _device_keys(user_id, device_id, content.get("keys"))
            await self._store.update_device(
                user_id, device_id, keys, deleted, stream_id, self._clock.time_msec()
            )
        elif cached:
            # An update we cannot place (a gap, or no position yet): fetch
            # the whole list again; queries meanwhile go to its server.
            await self._store.forget(user_id)
            self._start_resync(user_id)
        await self._device_lists.devices_changed(user_id, [device_id])

    async def on_signing_key_update(self, origin: str, content: Mapping[str, Any]) -> None:
        user_id = content.get("user_id")
        if not isinstance(user_id, str) or not UserID.is_valid(user_id):
            return
        if get_domain_from_id(user_id) != origin or not await self._tracked(user_id):
            return
        keys: dict[str, dict[str, Any]] = {}
        for field_name, key_type in CROSS_SIGNING_TYPES.items():
            key = _cross_signing_key(user_id, content.get(field_name))
            if key is not None:
                keys[key_type] = key
        if not keys:
            return
        cached, _position = await self._store.get_stream_id(user_id)
        if cached:
            await self._store.set_cross_signing(user_id, keys)
        await self._device_lists.devices_changed(user_id)

    # --- resync ---

    def _start_resync(self, user_id: str) -> None:
        if user_id in self._resyncing or len(self._resyncing) >= MAX_PENDING_RESYNCS:
            return
        self._resyncing.add(user_id)
        self._clock.run_in_background(self._resync, user_id)

    async def _resync(self, user_id: str) -> None:
        try:
            async with self._resync_slots:
                await self.resync(user_id)
        except Exception as e:
            logger.info("Resync of %s's devices failed: %s", user_id, e)
        finally:
            self._resyncing.discard(user_id)

    async def resync(self, user_id: str) -> None:
        """Fetch a remote user's whole device list and cache it."""
        answer = await with_timeout(
            self._transport.get_json(
                get_domain_from_id(user_id),
                f"{FEDERATION_V1}/user/devices/{quote(user_id, safe='')}",
                timeout_ms=RESYNC_TIMEOUT_MS,
            ),
            RESYNC_TIMEOUT_MS / 1000,
            self._clock,
        )
        if not isinstance(answer, dict):
            raise _Failure("not an object")
        found = _list_from_devices(user_id, answer)
        if not await self._tracked(user_id):
            return
        await self._store.replace_list(found, self._clock.time_msec())
        await self._device_lists.devices_changed(user_id)

    async def shutdown(self) -> None:
        return None
