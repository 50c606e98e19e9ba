"""End-to-end encryption keys: upload, query, claim, cross-signing, signatures.

The server stores and relays what clients publish; it never decrypts. It
does check what it can without secrets: that uploaded keys belong to the
uploader, and that cross-signing signatures verify against the keys they
claim to be made with.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from hamlet.core.crypto import verify_signed_json
from hamlet.core.errors import SignatureError
from hamlet.core.ids import get_domain_from_id, is_valid_user_id
from hamlet.handlers.common.errors import (
    BadJsonError,
    ForbiddenError,
    InvalidParamError,
    MatrixError,
)
from hamlet.handlers.common.service import ServiceBase
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.e2e_keys import (
    E2eKeysStore,
    OneTimeKey,
    Signature,
    TooManyOneTimeKeysError,
)

logger = logging.getLogger(__name__)

MASTER: Final = "master"
SELF_SIGNING: Final = "self_signing"
USER_SIGNING: Final = "user_signing"
KEY_TYPES: Final = (MASTER, SELF_SIGNING, USER_SIGNING)
#: Keys one /keys/signatures/upload may sign (each costs a lookup and a check).
MAX_SIGNED_OBJECTS: Final = 1000
# Clients count on this one being present, even at 0 (as Synapse does).
SIGNED_CURVE25519: Final = "signed_curve25519"
MAX_KEYS_PER_UPLOAD = 1000
_ERROR_NO_FEDERATION = {"status": 503, "message": "Federation is not available"}
#: How long a client's /keys/query or /keys/claim waits for other servers
#: unless it says (Synapse's default), and the most it may ask for.
DEFAULT_REMOTE_TIMEOUT_MS: Final = 10_000
MAX_REMOTE_TIMEOUT_MS: Final = 60_000
#: What another server may ask of us in one request.
MAX_FEDERATION_QUERY_USERS: Final = 1000
MAX_FEDERATION_CLAIMS: Final = 1000
MAX_FEDERATION_DEVICES: Final = 1000


class DeviceListUpdates(Protocol):
    async def devices_changed(self, user_id: str, device_ids: Collection[str] = ()) -> None: ...

    async def keys_changed_for_observer(self, observer: str, user_ids: Sequence[str]) -> None: ...


class _Device(Protocol):
    @property
    def device_id(self) -> str: ...


class DeviceLister(Protocol):
    async def get_devices(self, user_id: str) -> Sequence[_Device]: ...

    async def get_device(self, user_id: str, device_id: str) -> _Device | None: ...


@dataclass(slots=True)
class RemoteAnswer:
    """What other servers answered: the response's fields, merged, and
    `failures` keyed by server name."""

    keys: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, Any] = field(default_factory=dict)


class RemoteKeys(Protocol):
    """Asks other servers for their users' keys (federation, attached later)."""

    async def query(
        self, device_keys: Mapping[str, Sequence[str]], timeout_ms: int
    ) -> RemoteAnswer: ...

    async def claim(
        self, one_time_keys: Mapping[str, Mapping[str, str]], timeout_ms: int
    ) -> RemoteAnswer: ...

    async def master_key(self, user_id: str) -> dict[str, Any] | None: ...


def parse_device_queries(device_keys: Any, max_users: int | None = None) -> dict[str, list[str]]:
    """A `device_keys` query: {user: [device, ...]} (empty: every device)."""
    if not isinstance(device_keys, Mapping):
        raise BadJsonError("'device_keys' must be an object")
    if max_users is not None and len(device_keys) > max_users:
        raise BadJsonError(f"At most {max_users} users per query")
    out: dict[str, list[str]] = {}
    for user_id, devices in device_keys.items():
        if not is_valid_user_id(user_id):
            raise InvalidParamError(f"Invalid user ID {user_id[:100]!r}")
        if devices is None:
            devices = []
        if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
            raise BadJsonError(f"Devices of {user_id} must be a list of device IDs")
        out[user_id] = devices
    return out


def parse_claims(one_time_keys: Any, max_claims: int | None = None) -> dict[str, dict[str, str]]:
    """A `one_time_keys` claim: {user: {device: algorithm}}."""
    if not isinstance(one_time_keys, Mapping):
        raise BadJsonError("'one_time_keys' must be an object")
    out: dict[str, dict[str, str]] = {}
    count = 0
    for user_id, devices in one_time_keys.items():
        if not is_valid_user_id(user_id):
            raise InvalidParamError(f"Invalid user ID {user_id[:100]!r}")
        if not isinstance(devices, Mapping) or not all(
            isinstance(a, str) for a in devices.values()
        ):
            raise BadJsonError(f"Claims for {user_id} must map device IDs to algorithms")
        count += len(devices)
        if max_claims is not None and count > max_claims:
            raise BadJsonError(f"At most {max_claims} keys per claim")
        out[user_id] = dict(devices)
    return out


def _strip(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}


def _split_key_id(name: str, what: str) -> tuple[str, str]:
    algorithm, sep, key_id = name.partition(":")
    if not sep or not algorithm or not key_id:
        raise BadJsonError(f"Invalid {what} id {name[:100]!r}: expected 'algorithm:key_id'")
    return algorithm, key_id


def _parse_keys(value: Any, what: str) -> list[OneTimeKey]:
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise BadJsonError(f"'{what}' must be an object")
    if len(value) > MAX_KEYS_PER_UPLOAD:
        raise BadJsonError(f"Too many {what} (max {MAX_KEYS_PER_UPLOAD})")
    keys = []
    for name, key in value.items():
        algorithm, key_id = _split_key_id(name, what)
        if not isinstance(key, str | Mapping):
            raise BadJsonError(f"Key {name[:100]!r} must be a string or an object")
        keys.append(OneTimeKey(algorithm, key_id, key))
    return keys


def _check_device_keys(keys: Any, user_id: str, device_id: str) -> dict[str, Any]:
    if not isinstance(keys, Mapping):
        raise BadJsonError("'device_keys' must be an object")
    if keys.get("user_id") != user_id or keys.get("device_id") != device_id:
        raise BadJsonError(
            "User ID and device ID in 'device_keys' must match the requesting device"
        )
    algorithms = keys.get("algorithms")
    if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
        raise BadJsonError("'device_keys.algorithms' must be a list of strings")
    inner = keys.get("keys")
    if not isinstance(inner, Mapping) or not all(isinstance(v, str) for v in inner.values()):
        raise BadJsonError("'device_keys.keys' must be an object of strings")
    if not isinstance(keys.get("signatures"), Mapping):
        raise BadJsonError("'device_keys.signatures' must be an object")
    return dict(keys)


def _public_key(key: Mapping[str, Any]) -> str:
    """The one ed25519 public key of a cross-signing key (checked already)."""
    (value,) = key["keys"].values()
    return str(value)


def _check_cross_signing_key(key: Any, user_id: str, key_type: str) -> dict[str, Any]:
    if not isinstance(key, Mapping):
        raise BadJsonError(f"'{key_type}_key' must be an object")
    if key.get("user_id") != user_id:
        raise BadJsonError(f"'{key_type}_key.user_id' must be {user_id}")
    usage = key.get("usage")
    if not isinstance(usage, list) or key_type not in usage:
        raise BadJsonError(f"'{key_type}_key.usage' must include {key_type!r}")
    inner = key.get("keys")
    if not isinstance(inner, Mapping) or len(inner) != 1:
        raise BadJsonError(f"'{key_type}_key.keys' must hold exactly one key")
    ((key_id, public),) = inner.items()
    if not isinstance(public, str) or key_id != f"ed25519:{public}":
        raise BadJsonError(f"'{key_type}_key.keys' must map 'ed25519:<key>' to the key")
    signatures = key.get("signatures", {})
    if not isinstance(signatures, Mapping):
        raise BadJsonError(f"'{key_type}_key.signatures' must be an object")
    return dict(key)


def _verify(obj: Mapping[str, Any], user_id: str, public_key: str, key_id: str = "") -> None:
    """`obj` carries a valid signature by `user_id` with this ed25519 key
    (under `key_id`, by default `ed25519:<public key>`)."""
    try:
        verify_signed_json(obj, user_id, {key_id or f"ed25519:{public_key}": public_key})
    except (SignatureError, ValueError) as e:
        raise MatrixError(400, "M_INVALID_SIGNATURE", f"Invalid signature: {e}") from None


class E2eKeysHandler(ServiceBase):
    def __init__(
        self,
        *,
        server_name: str,
        clock: Clock,
        store: E2eKeysStore,
        device_lists: DeviceListUpdates,
        devices: DeviceLister,
        max_one_time_keys: int = 1000,
    ) -> None:
        # Clients keep about 50 one-time keys stored; the cap leaves room for
        # retries and stops a device from storing keys without bound.
        self._max_one_time_keys = max_one_time_keys
        self._server_name = server_name
        self._clock = clock
        self.store = store
        self._device_lists = device_lists
        self._devices = devices
        self._remote: RemoteKeys | None = None
        #: Moves whenever a one-time or fallback key is stored or claimed:
        #: their counts are in every /sync yet in no stream, so a kept sync
        #: result (`handlers/sync/sharing.py`) is stale once it moved.
        self.keys_generation = 0

    def attach_remote(self, remote: RemoteKeys) -> None:
        """Federation, built later, answers for other servers' users."""
        self._remote = remote

    def _is_local(self, user_id: str) -> bool:
        return is_valid_user_id(user_id) and get_domain_from_id(user_id) == self._server_name

    # --- /keys/upload ---

    async def upload_keys(
        self, user_id: str, device_id: str | None, body: Mapping[str, Any]
    ) -> dict[str, int]:
        if device_id is None:
            raise BadJsonError("Keys can only be uploaded by a device", "M_UNKNOWN")
        device_keys = body.get("device_keys")
        checked = (
            None if device_keys is None else _check_device_keys(device_keys, user_id, device_id)
        )
        one_time = _parse_keys(body.get("one_time_keys"), "one_time_keys")
        fallback = _parse_keys(body.get("fallback_keys"), "fallback_keys")
        if not fallback:
            fallback = _parse_keys(body.get("org.matrix.msc2732.fallback_keys"), "fallback_keys")
        if len({k.algorithm for k in fallback}) != len(fallback):
            raise BadJsonError("At most one fallback key per algorithm")
        now = self._clock.time_msec()
        try:
            await self._store_keys(user_id, device_id, one_time, fallback, now)
        finally:
            self.keys_generation += 1
        if checked is not None and await self.store.set_device_keys(
            user_id, device_id, checked, now
        ):
            await self._device_lists.devices_changed(user_id, [device_id])
        return await self.one_time_key_counts(user_id, device_id)

    async def _store_keys(
        self,
        user_id: str,
        device_id: str,
        one_time: list[OneTimeKey],
        fallback: list[OneTimeKey],
        now: int,
    ) -> None:
        try:
            conflicts = await self.store.add_one_time_keys(
                user_id,
                device_id,
                one_time,
                now,
                max_per_algorithm=self._max_one_time_keys,
            )
        except TooManyOneTimeKeysError as e:
            raise InvalidParamError(str(e)) from None
        if conflicts:
            raise BadJsonError(
                f"One time key {conflicts[0]} already exists with different content",
                "M_INVALID_PARAM",
            )
        if fallback:
            await self.store.set_fallback_keys(user_id, device_id, fallback)

    async def one_time_key_counts(self, user_id: str, device_id: str) -> dict[str, int]:
        counts = await self.store.count_one_time_keys(user_id, device_id)
        counts.setdefault(SIGNED_CURVE25519, 0)
        return counts

    async def unused_fallback_key_types(self, user_id: str, device_id: str) -> list[str]:
        return await self.store.get_unused_fallback_key_types(user_id, device_id)

    async def key_state(
        self, user_id: str, device_id: str, token_id: str | None = None
    ) -> tuple[dict[str, int], list[str]]:
        """`one_time_key_counts` and `unused_fallback_key_types` in one round
        trip, or none when the device's access token read them since they changed."""
        counts, unused = await self.store.get_key_state(user_id, device_id, token_id)
        counts.setdefault(SIGNED_CURVE25519, 0)
        return counts, unused

    # --- /keys/query ---

    async def query_keys(
        self, requester: str, device_keys: Any, timeout_ms: int = DEFAULT_REMOTE_TIMEOUT_MS
    ) -> dict[str, Any]:
        """`/keys/query`: local users' keys from the store, remote users' from
        their servers (or the cache of them), within `timeout_ms`."""
        queries = parse_device_queries(device_keys)
        local = {u: d for u, d in queries.items() if self._is_local(u)}
        remote = {u: d for u, d in queries.items() if u not in local}
        result = await self.local_keys(local, requester)
        result["user_signing_keys"] = {
            u: k for u, k in result.pop("user_signing_keys").items() if u == requester
        }
        failures: dict[str, Any] = {}
        if remote and self._remote is None:
            failures = {get_domain_from_id(u): dict(_ERROR_NO_FEDERATION) for u in remote}
        elif remote and self._remote is not None:
            answer = await self._remote.query(remote, timeout_ms)
            for name in ("device_keys", "master_keys", "self_signing_keys"):
                result[name].update(answer.keys.get(name, {}))
            failures = answer.failures
            await self._add_own_signatures(requester, result["master_keys"], remote)
        result["failures"] = failures
        return result

    async def _add_own_signatures(
        self, requester: str, master_keys: dict[str, Any], users: Collection[str]
    ) -> None:
        """Merge into other servers' users' master keys the signatures
        `requester` made of them here (only the signer sees them)."""
        for sig in await self.store.get_signatures([u for u in users if u in master_keys]):
            key = master_keys[sig.target_user_id]
            if sig.signer_user_id == requester and isinstance(key, dict):
                master_keys[sig.target_user_id] = _merge_signatures(key, [sig])

    async def local_keys(
        self, queries: Mapping[str, Sequence[str]], requester: str | None
    ) -> dict[str, Any]:
        """The keys of local users (an empty device list: all their devices).
        A master key carries the signatures of its owner and `requester`;
        `user_signing_keys` holds every queried user's (the caller filters)."""
        found = await self.store.get_device_keys(queries)
        cross = await self.store.get_cross_signing_keys(list(queries))
        signatures = await self.store.get_signatures(list(queries))
        extra_sigs: dict[tuple[str, str], list[Signature]] = {}
        for sig in signatures:
            extra_sigs.setdefault((sig.target_user_id, sig.target_key_id), []).append(sig)
        result: dict[str, Any] = {
            "device_keys": {},
            "master_keys": {},
            "self_signing_keys": {},
            "user_signing_keys": {},
        }
        for user_id in queries:
            by_device: dict[str, Any] = {}
            for device_id, (keys, display_name) in found.get(user_id, {}).items():
                keys = _merge_signatures(keys, extra_sigs.get((user_id, device_id), ()))
                unsigned = dict(keys.get("unsigned") or {})
                if display_name is not None:
                    unsigned["device_display_name"] = display_name
                keys["unsigned"] = unsigned
                by_device[device_id] = keys
            result["device_keys"][user_id] = by_device
            own = cross.get(user_id, {})
            if MASTER in own:
                master = own[MASTER]
                visible = [
                    s
                    for s in extra_sigs.get((user_id, _public_key(master)), ())
                    if s.signer_user_id in (user_id, requester)
                ]
                result["master_keys"][user_id] = _merge_signatures(master, visible)
            if SELF_SIGNING in own:
                result["self_signing_keys"][user_id] = own[SELF_SIGNING]
            if USER_SIGNING in own:
                result["user_signing_keys"][user_id] = own[USER_SIGNING]
        return result

    async def federation_query(self, device_keys: Any) -> dict[str, Any]:
        """`/user/keys/query` from another server: our users' keys (others are skipped)."""
        queries = parse_device_queries(device_keys, max_users=MAX_FEDERATION_QUERY_USERS)
        local = {u: d for u, d in queries.items() if self._is_local(u)}
        result = await self.local_keys(local, None)
        del result["user_signing_keys"]
        for keys in result["device_keys"].values():
            for device in keys.values():
                # Device names stay on this server, as Synapse's default
                # (`allow_device_name_lookup_over_federation: false`).
                device["unsigned"].pop("device_display_name", None)
        return result

    async def user_devices(self, user_id: str) -> dict[str, Any]:
        """`/user/devices/{userId}`: a local user's devices, keys and position."""
        if not self._is_local(user_id):
            raise InvalidParamError("User is not hosted on this homeserver")
        devices = await self._devices.get_devices(user_id)
        keys = await self.local_keys({user_id: []}, None)
        with_keys = keys["device_keys"][user_id]
        out: dict[str, Any] = {
            "user_id": user_id,
            "stream_id": await self.store.last_device_change(user_id) or 0,
            "devices": [],
        }
        for device in devices[:MAX_FEDERATION_DEVICES]:
            entry: dict[str, Any] = {"device_id": device.device_id}
            if device.device_id in with_keys:
                device_keys = with_keys[device.device_id]
                device_keys["unsigned"].pop("device_display_name", None)
                entry["keys"] = device_keys
            out["devices"].append(entry)
        if user_id in keys["master_keys"]:
            out["master_key"] = keys["master_keys"][user_id]
        if user_id in keys["self_signing_keys"]:
            out["self_signing_key"] = keys["self_signing_keys"][user_id]
        return out

    async def device_update(self, user_id: str, device_id: str) -> dict[str, Any]:
        """The content of an `m.device_list_update` EDU for a local device,
        without stream_id and prev_id: its keys, or `deleted`."""
        if await self._devices.get_device(user_id, device_id) is None:
            return {"user_id": user_id, "device_id": device_id, "deleted": True}
        content: dict[str, Any] = {"user_id": user_id, "device_id": device_id}
        keys = (await self.local_keys({user_id: [device_id]}, None))["device_keys"][user_id]
        if device_id in keys:
            device_keys = keys[device_id]
            device_keys["unsigned"].pop("device_display_name", None)
            content["keys"] = device_keys
        return content

    async def signing_key_update(self, user_id: str) -> dict[str, Any]:
        """The content of an `m.signing_key_update` EDU for a local user."""
        keys = await self.local_keys({user_id: []}, None)
        content: dict[str, Any] = {"user_id": user_id}
        if user_id in keys["master_keys"]:
            content["master_key"] = keys["master_keys"][user_id]
        if user_id in keys["self_signing_keys"]:
            content["self_signing_key"] = keys["self_signing_keys"][user_id]
        return content

    # --- /keys/claim ---

    async def claim_keys(
        self, one_time_keys: Any, timeout_ms: int = DEFAULT_REMOTE_TIMEOUT_MS
    ) -> dict[str, Any]:
        """`/keys/claim`: local keys from the store, remote ones from their servers."""
        claims = parse_claims(one_time_keys)
        local = {u: d for u, d in claims.items() if self._is_local(u)}
        remote = {u: d for u, d in claims.items() if u not in local}
        out = await self.claim_local(local)
        failures: dict[str, Any] = {}
        if remote and self._remote is None:
            failures = {get_domain_from_id(u): dict(_ERROR_NO_FEDERATION) for u in remote}
        elif remote and self._remote is not None:
            answer = await self._remote.claim(remote, timeout_ms)
            out.update(answer.keys.get("one_time_keys", {}))
            failures = answer.failures
        return {"one_time_keys": out, "failures": failures}

    async def claim_local(self, claims: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
        """{user: {device: {algorithm:key_id: key}}} for local users' claims."""
        try:
            claimed = await self.store.claim_keys(
                [(u, d, alg) for u, devices in claims.items() for d, alg in devices.items()]
            )
        finally:
            self.keys_generation += 1
        out: dict[str, dict[str, Any]] = {}
        for (user_id, device_id), key in claimed.items():
            out.setdefault(user_id, {})[device_id] = {f"{key.algorithm}:{key.key_id}": key.key}
        return out

    async def federation_claim(self, one_time_keys: Any) -> dict[str, Any]:
        """`/user/keys/claim` from another server: our users' keys (others are skipped)."""
        claims = parse_claims(one_time_keys, max_claims=MAX_FEDERATION_CLAIMS)
        local = {u: d for u, d in claims.items() if self._is_local(u)}
        return {"one_time_keys": await self.claim_local(local)}

    # --- cross-signing keys ---

    async def parse_signing_keys(
        self, user_id: str, body: Mapping[str, Any]
    ) -> dict[str, dict[str, Any]]:
        """The keys in a /keys/device_signing/upload body, checked: {key_type: key}."""
        keys: dict[str, dict[str, Any]] = {}
        for key_type in KEY_TYPES:
            value = body.get(f"{key_type}_key")
            if value is not None:
                keys[key_type] = _check_cross_signing_key(value, user_id, key_type)
        return keys

    async def signing_keys_need_uia(self, user_id: str, keys: Mapping[str, Any]) -> bool:
        """UIA is needed unless the user has no master key yet, or the request
        only repeats keys already stored (the spec's two exceptions)."""
        stored = (await self.store.get_cross_signing_keys([user_id])).get(user_id, {})
        if MASTER not in stored:
            return False
        return any(stored.get(key_type) != key for key_type, key in keys.items())

    async def upload_signing_keys(self, user_id: str, keys: Mapping[str, dict[str, Any]]) -> None:
        stored = (await self.store.get_cross_signing_keys([user_id])).get(user_id, {})
        master = keys.get(MASTER, stored.get(MASTER))
        if master is None:
            raise MatrixError(400, "M_MISSING_PARAM", "No master key available to verify")
        master_public = _public_key(master)
        device_ids = {d.device_id for d in await self._devices.get_devices(user_id)}
        new: dict[str, tuple[str, Mapping[str, Any]]] = {}
        for key_type, key in keys.items():
            public = _public_key(key)
            if public in device_ids:
                raise ForbiddenError("Key ID in use")
            if key_type != MASTER:
                _verify(key, user_id, master_public)
            if stored.get(key_type) != key:
                new[key_type] = (public, key)
        if not new:
            return
        await self.store.set_cross_signing_keys(user_id, new, self._clock.time_msec())
        await self._device_lists.devices_changed(user_id)

    # --- /keys/signatures/upload ---

    async def upload_signatures(self, user_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        failures: dict[str, dict[str, Any]] = {}
        accepted: list[Signature] = []
        own_changed: set[str] = set()
        others_changed: list[str] = []
        count = sum(len(v) if isinstance(v, Mapping) else 1 for v in body.values())
        if count > MAX_SIGNED_OBJECTS:
            raise BadJsonError(f"At most {MAX_SIGNED_OBJECTS} signed objects per upload")
        cross = await self.store.get_cross_signing_keys([user_id])
        mine = cross.get(user_id, {})
        for target_user, by_key in body.items():
            if not isinstance(by_key, Mapping):
                raise BadJsonError(f"Signatures for {target_user[:100]!r} must be an object")
            for key_id, signed in by_key.items():
                try:
                    if not isinstance(signed, Mapping):
                        raise BadJsonError("The signed object must be an object")
                    if not is_valid_user_id(target_user):
                        raise MatrixError(404, "M_NOT_FOUND", "Unknown user")
                    found = await self._check_signature(user_id, mine, target_user, key_id, signed)
                except MatrixError as e:
                    failures.setdefault(target_user, {})[key_id] = {
                        "errcode": e.errcode,
                        "error": e.message,
                    }
                    continue
                accepted.extend(found)
                if target_user == user_id:
                    own_changed.add(key_id)
                else:
                    others_changed.append(target_user)
        await self.store.add_signatures(accepted)
        master = _public_key(mine[MASTER]) if MASTER in mine else None
        if master in own_changed:
            await self._device_lists.devices_changed(user_id)
        if own_changed - {master}:
            await self._device_lists.devices_changed(user_id, own_changed - {master})
        if others_changed:
            await self._device_lists.keys_changed_for_observer(user_id, others_changed)
        return {"failures": failures}

    async def _master_key(self, user_id: str) -> Mapping[str, Any] | None:
        """A user's master key: ours from the store, another server's from it
        (or the cache of it), checked to hold one ed25519 key."""
        if self._is_local(user_id):
            return (await self.store.get_cross_signing_keys([user_id])).get(user_id, {}).get(MASTER)
        if self._remote is None:
            return None
        key = await self._remote.master_key(user_id)
        inner = key.get("keys") if key is not None else None
        if not isinstance(inner, Mapping) or len(inner) != 1:
            return None
        ((key_id, public),) = inner.items()
        if not isinstance(public, str) or key_id != f"ed25519:{public}":
            return None
        return key

    async def _check_signature(
        self,
        user_id: str,
        mine: Mapping[str, Mapping[str, Any]],
        target_user: str,
        key_id: str,
        signed: Mapping[str, Any],
    ) -> list[Signature]:
        """The signatures in `signed` that verify, or a MatrixError to report."""
        target: Mapping[str, Any] | None
        signer_keys: dict[str, str]
        if target_user != user_id:
            # Another user's master key (maybe another server's), signed
            # with our user-signing key.
            target = await self._master_key(target_user)
            if target is None or _public_key(target) != key_id:
                raise MatrixError(404, "M_NOT_FOUND", "Unknown master key")
            if USER_SIGNING not in mine:
                raise MatrixError(400, "M_MISSING_PARAM", "No user-signing key uploaded")
            usk = _public_key(mine[USER_SIGNING])
            signer_keys = {f"ed25519:{usk}": usk}
        elif MASTER in mine and key_id == _public_key(mine[MASTER]):
            # Our own master key, signed by one of our devices.
            target = mine[MASTER]
            devices = (await self.store.get_device_keys({user_id: []})).get(user_id, {})
            signer_keys = {}
            for device_id, (keys, _name) in devices.items():
                public = keys.get("keys", {}).get(f"ed25519:{device_id}")
                if isinstance(public, str):
                    signer_keys[f"ed25519:{device_id}"] = public
        else:
            # One of our devices, signed with our self-signing key.
            devices = (await self.store.get_device_keys({user_id: [key_id]})).get(user_id, {})
            if key_id not in devices:
                raise MatrixError(404, "M_NOT_FOUND", "Unknown device")
            target = devices[key_id][0]
            if SELF_SIGNING not in mine:
                raise MatrixError(400, "M_MISSING_PARAM", "No self-signing key uploaded")
            ssk = _public_key(mine[SELF_SIGNING])
            signer_keys = {f"ed25519:{ssk}": ssk}
        assert target is not None
        if _strip(signed) != _strip(target):
            raise BadJsonError("The signed object does not match the stored key")
        sigs = signed.get("signatures", {})
        by_me = sigs.get(user_id) if isinstance(sigs, Mapping) else None
        if not isinstance(by_me, Mapping):
            raise MatrixError(400, "M_INVALID_SIGNATURE", "No signature by the uploader")
        out = []
        for signer_key_id, signature in by_me.items():
            public = signer_keys.get(signer_key_id)
            if public is None:
                continue
            if not isinstance(signature, str):
                raise MatrixError(400, "M_INVALID_SIGNATURE", "Malformed signature")
            single = {**_strip(signed), "signatures": {user_id: {signer_key_id: signature}}}
            _verify(single, user_id, public, signer_key_id)
            out.append(Signature(target_user, key_id, user_id, signer_key_id, signature))
        if not out:
            raise MatrixError(400, "M_INVALID_SIGNATURE", "No signature by a key that may sign")
        return out

    async def shutdown(self) -> None:
        return None


def _merge_signatures(
    key: Mapping[str, Any], extra: Sequence[Signature] | tuple[()]
) -> dict[str, Any]:
    out = dict(key)
    if not extra:
        return out
    signatures = {u: dict(s) for u, s in dict(key.get("signatures") or {}).items()}
    for sig in extra:
        signatures.setdefault(sig.signer_user_id, {})[sig.signer_key_id] = sig.signature
    out["signatures"] = signatures
    return out
