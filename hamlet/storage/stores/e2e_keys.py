"""End-to-end encryption keys: device keys, one-time and fallback keys,
cross-signing keys and signatures, and the device list stream."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from hamlet.runtime.lru import LruCache
from hamlet.storage.database import Database, Transaction

DEVICE_LISTS_STREAM = "device_lists"
# How often a claim retries when a concurrent claim took the key it picked.
_CLAIM_ATTEMPTS = 20


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


@dataclass(frozen=True, slots=True)
class OneTimeKey:
    algorithm: str
    key_id: str
    key: Any


@dataclass(frozen=True, slots=True)
class FallbackKey:
    algorithm: str
    key_id: str
    key: Any
    used: bool


@dataclass(frozen=True, slots=True)
class Signature:
    target_user_id: str
    target_key_id: str
    signer_user_id: str
    signer_key_id: str
    signature: str


class TooManyOneTimeKeysError(Exception):
    def __init__(self, algorithm: str, limit: int) -> None:
        super().__init__(f"At most {limit} one-time keys of {algorithm} per device")
        self.algorithm = algorithm
        self.limit = limit


async def delete_device_keys_txn(txn: Transaction, user_id: str, device_ids: Iterable[str]) -> None:
    """Forget every key of these devices (called where the devices are deleted)."""
    for device_id in device_ids:
        for table in ("e2e_device_keys", "e2e_one_time_keys", "e2e_fallback_keys"):
            await txn.execute(
                f"DELETE FROM {table} WHERE user_id = ? AND device_id = ?", (user_id, device_id)
            )
        await txn.execute(
            "DELETE FROM e2e_signatures WHERE target_user_id = ? AND target_key_id = ?",
            (user_id, device_id),
        )


_COUNT_ONE_TIME_KEYS = (
    "SELECT algorithm, COUNT(*) FROM e2e_one_time_keys"
    " WHERE user_id = ? AND device_id = ? GROUP BY algorithm"
)
_UNUSED_FALLBACK_TYPES = (
    "SELECT algorithm FROM e2e_fallback_keys"
    " WHERE user_id = ? AND device_id = ? AND used = ? ORDER BY algorithm"
)


#: Devices whose key state is remembered, and users whose last key write is.
KEY_STATE_ENTRIES = 2_000


class E2eKeysStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        # A device's (one-time key counts, unused fallback types), read by
        # each of its syncs, by (user, device, access token): a device
        # deleted and created again under its id has new tokens. An entry
        # read before a write to its user's keys no longer holds.
        self._key_states: LruCache[
            tuple[str, str, str], tuple[int, tuple[dict[str, int], list[str]]]
        ] = LruCache(KEY_STATE_ENTRIES)
        self._writes = 0
        self._last_write: dict[str, int] = {}
        # `_last_write` is emptied when full: what was read before then is dropped.
        self._forgotten_before = 0

    def _keys_written(self, user_ids: Iterable[str]) -> None:
        self._writes += 1
        if len(self._last_write) >= KEY_STATE_ENTRIES:
            self._last_write.clear()
            self._key_states.clear()
            self._forgotten_before = self._writes
        for user_id in user_ids:
            self._last_write[user_id] = self._writes

    # --- device keys ---

    async def set_device_keys(
        self, user_id: str, device_id: str, keys: Mapping[str, Any], ts: int
    ) -> bool:
        """Store the device's keys; False if exactly these were stored already."""
        key_json = _dumps(keys)

        async def run(txn: Transaction) -> bool:
            old = await txn.fetchval(
                "SELECT key_json FROM e2e_device_keys WHERE user_id = ? AND device_id = ?",
                (user_id, device_id),
            )
            if old is not None and orjson.loads(old) == keys:
                return False
            if old is None:
                await txn.execute(
                    "INSERT INTO e2e_device_keys (user_id, device_id, key_json, ts)"
                    " VALUES (?, ?, ?, ?)",
                    (user_id, device_id, key_json, ts),
                )
            else:
                await txn.execute(
                    "UPDATE e2e_device_keys SET key_json = ?, ts = ?"
                    " WHERE user_id = ? AND device_id = ?",
                    (key_json, ts, user_id, device_id),
                )
            return True

        return await self.db.run_interaction("set_device_keys", run)

    async def get_device_keys(
        self, queries: Mapping[str, Collection[str]]
    ) -> dict[str, dict[str, tuple[dict[str, Any], str | None]]]:
        """{user: {device: (keys, display name)}} for devices that uploaded keys.

        An empty device collection means every device of that user.
        """

        async def run(txn: Transaction) -> dict[str, dict[str, tuple[dict[str, Any], str | None]]]:
            out: dict[str, dict[str, tuple[dict[str, Any], str | None]]] = {}
            for user_id, device_ids in queries.items():
                rows = await txn.fetchall(
                    "SELECT k.device_id, k.key_json, d.display_name FROM e2e_device_keys AS k"
                    " JOIN devices AS d ON d.user_id = k.user_id AND d.device_id = k.device_id"
                    " WHERE k.user_id = ?",
                    (user_id,),
                )
                wanted = set(device_ids)
                found = out.setdefault(user_id, {})
                for device_id, key_json, display_name in rows:
                    if wanted and device_id not in wanted:
                        continue
                    found[str(device_id)] = (
                        orjson.loads(key_json),
                        None if display_name is None else str(display_name),
                    )
            return out

        return await self.db.run_interaction("get_device_keys", run)

    # --- one-time keys ---

    async def add_one_time_keys(
        self,
        user_id: str,
        device_id: str,
        keys: Sequence[OneTimeKey],
        ts: int,
        *,
        max_per_algorithm: int,
    ) -> list[str]:
        """Store the new keys; a key id already stored with the same content is
        skipped. If any is stored with other content, nothing is written and
        their `algorithm:key_id`s are returned. If the device would then hold
        more than `max_per_algorithm` keys of one algorithm, nothing is written
        and `TooManyOneTimeKeysError` is raised."""
        if not keys:
            return []

        async def run(txn: Transaction) -> list[str]:
            conflicts: list[str] = []
            new: list[OneTimeKey] = []
            for key in keys:
                raw = await txn.fetchval(
                    "SELECT key_json FROM e2e_one_time_keys"
                    " WHERE user_id = ? AND device_id = ? AND algorithm = ? AND key_id = ?",
                    (user_id, device_id, key.algorithm, key.key_id),
                )
                if raw is None:
                    new.append(key)
                elif orjson.loads(raw) != key.key:
                    conflicts.append(f"{key.algorithm}:{key.key_id}")
            if conflicts or not new:
                return conflicts
            rows = await txn.fetchall(
                "SELECT algorithm, COUNT(*) FROM e2e_one_time_keys"
                " WHERE user_id = ? AND device_id = ? GROUP BY algorithm",
                (user_id, device_id),
            )
            counts = Counter({str(r[0]): int(r[1]) for r in rows})
            counts.update(k.algorithm for k in new)
            for algorithm, count in counts.items():
                if count > max_per_algorithm:
                    raise TooManyOneTimeKeysError(algorithm, max_per_algorithm)
            await txn.executemany(
                "INSERT INTO e2e_one_time_keys"
                " (user_id, device_id, algorithm, key_id, key_json, ts)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(user_id, device_id, k.algorithm, k.key_id, _dumps(k.key), ts) for k in new],
            )
            return []

        try:
            return await self.db.run_interaction("add_one_time_keys", run)
        finally:
            self._keys_written([user_id])

    async def count_one_time_keys(self, user_id: str, device_id: str) -> dict[str, int]:
        rows = await self.db.fetchall(
            "count_one_time_keys",
            _COUNT_ONE_TIME_KEYS,
            user_id,
            device_id,
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def claim_keys(
        self, claims: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str], OneTimeKey]:
        """Take one key per (user, device, algorithm): a one-time key, deleted in
        the same transaction, or else the fallback key, marked used."""

        async def run(txn: Transaction) -> dict[tuple[str, str], OneTimeKey]:
            out: dict[tuple[str, str], OneTimeKey] = {}
            for user_id, device_id, algorithm in claims:
                key = await self._claim_one(txn, user_id, device_id, algorithm)
                if key is not None:
                    out[(user_id, device_id)] = key
            return out

        try:
            return await self.db.run_interaction("claim_e2e_keys", run)
        finally:
            self._keys_written({user_id for user_id, _device, _algorithm in claims})

    @staticmethod
    async def _claim_one(
        txn: Transaction, user_id: str, device_id: str, algorithm: str
    ) -> OneTimeKey | None:
        for _ in range(_CLAIM_ATTEMPTS):
            row = await txn.fetchone(
                "SELECT key_id, key_json FROM e2e_one_time_keys"
                " WHERE user_id = ? AND device_id = ? AND algorithm = ?"
                " ORDER BY key_id LIMIT 1",
                (user_id, device_id, algorithm),
            )
            if row is None:
                break
            # Under PostgreSQL a concurrent claim may have deleted the row
            # since we read it: then we deleted nothing and pick another.
            deleted = await txn.execute(
                "DELETE FROM e2e_one_time_keys"
                " WHERE user_id = ? AND device_id = ? AND algorithm = ? AND key_id = ?",
                (user_id, device_id, algorithm, row[0]),
            )
            if deleted == 1:
                return OneTimeKey(algorithm, str(row[0]), orjson.loads(row[1]))
        row = await txn.fetchone(
            "SELECT key_id, key_json FROM e2e_fallback_keys"
            " WHERE user_id = ? AND device_id = ? AND algorithm = ?",
            (user_id, device_id, algorithm),
        )
        if row is None:
            return None
        await txn.execute(
            "UPDATE e2e_fallback_keys SET used = ?"
            " WHERE user_id = ? AND device_id = ? AND algorithm = ?",
            (True, user_id, device_id, algorithm),
        )
        return OneTimeKey(algorithm, str(row[0]), orjson.loads(row[1]))

    # --- fallback keys ---

    async def set_fallback_keys(
        self, user_id: str, device_id: str, keys: Sequence[OneTimeKey]
    ) -> None:
        """One per algorithm: a new key replaces the old one (unused again);
        the same key again keeps its `used` flag."""

        async def run(txn: Transaction) -> None:
            for key in keys:
                key_json = _dumps(key.key)
                old = await txn.fetchone(
                    "SELECT key_id, key_json FROM e2e_fallback_keys"
                    " WHERE user_id = ? AND device_id = ? AND algorithm = ?",
                    (user_id, device_id, key.algorithm),
                )
                if old is not None and old[0] == key.key_id and orjson.loads(old[1]) == key.key:
                    continue
                await txn.execute(
                    "DELETE FROM e2e_fallback_keys"
                    " WHERE user_id = ? AND device_id = ? AND algorithm = ?",
                    (user_id, device_id, key.algorithm),
                )
                await txn.execute(
                    "INSERT INTO e2e_fallback_keys"
                    " (user_id, device_id, algorithm, key_id, key_json, used)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (user_id, device_id, key.algorithm, key.key_id, key_json, False),
                )

        try:
            await self.db.run_interaction("set_fallback_keys", run)
        finally:
            self._keys_written([user_id])

    async def get_key_state(
        self, user_id: str, device_id: str, token_id: str | None = None
    ) -> tuple[dict[str, int], list[str]]:
        """`count_one_time_keys` and `get_unused_fallback_key_types` in one
        round trip (every /sync of a device asks for both), or none when the
        device's access token `token_id` read them since the last change."""
        key = (user_id, device_id, token_id) if token_id is not None else None
        cached = self._key_states.get(key) if key is not None else None
        if (
            cached is not None
            and cached[0] >= self._forgotten_before
            and cached[0] >= self._last_write.get(user_id, 0)
        ):
            counts, unused = cached[1]
            return dict(counts), list(unused)
        read_at = self._writes

        async def run(txn: Transaction) -> tuple[dict[str, int], list[str]]:
            counts = await txn.fetchall(_COUNT_ONE_TIME_KEYS, (user_id, device_id))
            unused = await txn.fetchall(_UNUSED_FALLBACK_TYPES, (user_id, device_id, False))
            return {str(r[0]): int(r[1]) for r in counts}, [str(r[0]) for r in unused]

        state = await self.db.run_interaction("get_e2e_key_state", run)
        if key is not None:
            self._key_states.set(key, (read_at, (dict(state[0]), list(state[1]))))
        return state

    async def get_unused_fallback_key_types(self, user_id: str, device_id: str) -> list[str]:
        rows = await self.db.fetchall(
            "get_unused_fallback_key_types",
            _UNUSED_FALLBACK_TYPES,
            user_id,
            device_id,
            False,
        )
        return [str(r[0]) for r in rows]

    # --- cross-signing keys and signatures ---

    async def get_cross_signing_keys(
        self, user_ids: Collection[str]
    ) -> dict[str, dict[str, dict[str, Any]]]:
        """{user: {key_type: key}} for the users that have any."""

        async def run(txn: Transaction) -> dict[str, dict[str, dict[str, Any]]]:
            out: dict[str, dict[str, dict[str, Any]]] = {}
            for user_id in user_ids:
                rows = await txn.fetchall(
                    "SELECT key_type, key_json FROM e2e_cross_signing_keys WHERE user_id = ?",
                    (user_id,),
                )
                if rows:
                    out[user_id] = {str(r[0]): orjson.loads(r[1]) for r in rows}
            return out

        return await self.db.run_interaction("get_cross_signing_keys", run)

    async def set_cross_signing_keys(
        self, user_id: str, keys: Mapping[str, tuple[str, Mapping[str, Any]]], ts: int
    ) -> None:
        """Replace the given key types: {key_type: (public key, key json)}."""

        async def run(txn: Transaction) -> None:
            for key_type, (public_key, key) in keys.items():
                await txn.execute(
                    "DELETE FROM e2e_cross_signing_keys WHERE user_id = ? AND key_type = ?",
                    (user_id, key_type),
                )
                await txn.execute(
                    "INSERT INTO e2e_cross_signing_keys"
                    " (user_id, key_type, public_key, key_json, ts) VALUES (?, ?, ?, ?, ?)",
                    (user_id, key_type, public_key, _dumps(key), ts),
                )

        await self.db.run_interaction("set_cross_signing_keys", run)

    async def add_signatures(self, signatures: Sequence[Signature]) -> None:
        if not signatures:
            return

        async def run(txn: Transaction) -> None:
            for s in signatures:
                await txn.execute(
                    "DELETE FROM e2e_signatures WHERE target_user_id = ? AND target_key_id = ?"
                    " AND signer_user_id = ? AND signer_key_id = ?",
                    (s.target_user_id, s.target_key_id, s.signer_user_id, s.signer_key_id),
                )
                await txn.execute(
                    "INSERT INTO e2e_signatures (target_user_id, target_key_id,"
                    " signer_user_id, signer_key_id, signature) VALUES (?, ?, ?, ?, ?)",
                    (
                        s.target_user_id,
                        s.target_key_id,
                        s.signer_user_id,
                        s.signer_key_id,
                        s.signature,
                    ),
                )

        await self.db.run_interaction("add_e2e_signatures", run)

    async def get_signatures(self, target_user_ids: Collection[str]) -> list[Signature]:
        async def run(txn: Transaction) -> list[Signature]:
            out: list[Signature] = []
            for user_id in target_user_ids:
                rows = await txn.fetchall(
                    "SELECT target_key_id, signer_user_id, signer_key_id, signature"
                    " FROM e2e_signatures WHERE target_user_id = ?",
                    (user_id,),
                )
                out.extend(
                    Signature(user_id, str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows
                )
            return out

        return await self.db.run_interaction("get_e2e_signatures", run)

    # --- the device list stream ---

    async def add_device_list_changes(
        self, rows: Sequence[tuple[int, str, str | None, str | None]]
    ) -> None:
        """Rows of (stream_id, user whose devices/keys changed, observer or None,
        the device changed or None)."""
        await self.db.run_interaction(
            "add_device_list_changes",
            lambda txn: txn.executemany(
                "INSERT INTO device_lists_stream (stream_id, user_id, observer, device_id)"
                " VALUES (?, ?, ?, ?)",
                rows,
            ),
        )

    async def last_device_change(self, user_id: str, before: int | None = None) -> int | None:
        """The stream id of the user's newest device row (before `before`, if given):
        the position other servers know their device list at."""
        row = await self.db.fetchone(
            "last_device_change",
            "SELECT MAX(stream_id) FROM device_lists_stream WHERE user_id = ?"
            " AND observer IS NULL AND device_id IS NOT NULL AND stream_id < ?",
            user_id,
            before if before is not None else 2**62,
        )
        return None if row is None or row[0] is None else int(row[0])

    async def get_device_list_changes(
        self, observer: str, since: int, upto: int
    ) -> tuple[set[str], set[str]]:
        """Users whose devices or keys changed in (since, upto]: (for everyone,
        for `observer` only)."""
        rows = await self.db.fetchall(
            "get_device_list_changes",
            "SELECT DISTINCT user_id, observer FROM device_lists_stream"
            " WHERE stream_id > ? AND stream_id <= ? AND (observer IS NULL OR observer = ?)",
            since,
            upto,
            observer,
        )
        public = {str(r[0]) for r in rows if r[1] is None}
        private = {str(r[0]) for r in rows if r[1] is not None}
        return public, private

    async def get_membership_changes(
        self, user_id: str, since: int, upto: int
    ) -> list[tuple[str, str, str, str | None]]:
        """Membership events in (since, upto] of the events stream, in rooms the
        user has ever been in: (room, target, membership, previous membership)."""
        rows = await self.db.fetchall(
            "get_membership_changes_for_device_lists",
            "SELECT e.room_id, e.state_key, e.json, p.json FROM events AS e"
            " LEFT JOIN dag_events AS p ON p.event_id = e.replaces_state"
            " WHERE e.type = 'm.room.member' AND e.stream_ordering > ?"
            " AND e.stream_ordering <= ? AND e.room_id IN"
            " (SELECT room_id FROM room_memberships WHERE user_id = ?)"
            " ORDER BY e.stream_ordering",
            since,
            upto,
            user_id,
        )
        out: list[tuple[str, str, str, str | None]] = []
        for room_id, state_key, event_json, prev_json in rows:
            membership = _membership_of(event_json)
            prev = None if prev_json is None else _membership_of(prev_json)
            out.append((str(room_id), str(state_key), membership or "", prev))
        return out


def _membership_of(event_json: str | bytes) -> str | None:
    content = orjson.loads(event_json).get("content")
    value = content.get("membership") if isinstance(content, dict) else None
    return value if isinstance(value, str) else None
