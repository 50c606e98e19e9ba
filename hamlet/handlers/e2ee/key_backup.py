"""Server-side key backup (`/room_keys/...`): opaque encrypted session keys.

Keys are uploaded only to the current (newest) version; a client on an
older one is told the current version with 403 M_WRONG_ROOM_KEYS_VERSION.
When a session is uploaded again, the better key stays (the spec's rule,
`should_replace`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hamlet.handlers.common.errors import (
    BadJsonError,
    ForbiddenError,
    InvalidParamError,
    MissingParamError,
    NotFoundError,
)
from hamlet.handlers.common.service import ServiceBase
from hamlet.storage.stores.key_backup import BackupVersion, KeyBackupStore, RoomKey

MAX_KEYS_PER_UPLOAD = 10_000


def should_replace(old: RoomKey, new: RoomKey) -> bool:
    """A verified key beats an unverified one; then the lower first_message_index
    (it decrypts more); then the lower forwarded_count."""
    if old.is_verified != new.is_verified:
        return new.is_verified
    if old.first_message_index != new.first_message_index:
        return new.first_message_index < old.first_message_index
    return new.forwarded_count < old.forwarded_count


def parse_version(text: str | None) -> int:
    """A version as the client sent it; anything not ours is simply not found."""
    if text is None:
        raise MissingParamError("Missing param: version")
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise NotFoundError(f"Unknown backup version {text[:32]!r}")
    return int(text)


def _version_json(v: BackupVersion) -> dict[str, Any]:
    return {
        "algorithm": v.algorithm,
        "auth_data": v.auth_data,
        "count": v.count,
        "etag": str(v.etag),
        "version": str(v.version),
    }


def _parse_room_key(room_id: str, session_id: str, data: Any) -> RoomKey:
    if not isinstance(data, Mapping):
        raise BadJsonError(f"Key for session {session_id[:100]!r} must be an object")
    first = data.get("first_message_index")
    forwarded = data.get("forwarded_count")
    verified = data.get("is_verified")
    session_data = data.get("session_data")
    for name, value in (("first_message_index", first), ("forwarded_count", forwarded)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BadJsonError(f"'{name}' must be a non-negative integer")
    if not isinstance(verified, bool):
        raise BadJsonError("'is_verified' must be a boolean")
    if not isinstance(session_data, Mapping):
        raise BadJsonError("'session_data' must be an object")
    assert isinstance(first, int) and isinstance(forwarded, int)
    return RoomKey(room_id, session_id, first, forwarded, verified, dict(session_data))


def _parse_sessions(room_id: str, body: Any) -> list[RoomKey]:
    if not isinstance(body, Mapping) or not isinstance(body.get("sessions"), Mapping):
        raise BadJsonError("'sessions' must be an object")
    return [_parse_room_key(room_id, sid, data) for sid, data in body["sessions"].items()]


class KeyBackupHandler(ServiceBase):
    def __init__(self, store: KeyBackupStore) -> None:
        self.store = store

    # --- versions ---

    @staticmethod
    def _check_version_body(body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        algorithm = body.get("algorithm")
        auth_data = body.get("auth_data")
        if not isinstance(algorithm, str):
            raise BadJsonError("'algorithm' must be a string")
        if not isinstance(auth_data, Mapping):
            raise BadJsonError("'auth_data' must be an object")
        return algorithm, dict(auth_data)

    async def create_version(self, user_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        algorithm, auth_data = self._check_version_body(body)
        version = await self.store.create_version(user_id, algorithm, auth_data)
        return {"version": str(version)}

    async def get_version(self, user_id: str, version: str | None) -> dict[str, Any]:
        found = await self.store.get_version(
            user_id, None if version is None else parse_version(version)
        )
        if found is None:
            raise NotFoundError("No backup found" if version is None else "Unknown backup version")
        return _version_json(found)

    async def update_version(
        self, user_id: str, version: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        number = parse_version(version)
        algorithm, auth_data = self._check_version_body(body)
        if "version" in body and body["version"] != version:
            raise InvalidParamError("Version in body does not match the one in the path")
        found = await self.store.get_version(user_id, number)
        if found is None:
            raise NotFoundError("Unknown backup version")
        if found.algorithm != algorithm:
            raise InvalidParamError("Algorithm does not match")
        await self.store.update_version(user_id, number, auth_data)
        return {}

    async def delete_version(self, user_id: str, version: str | None) -> dict[str, Any]:
        if version is None:
            current = await self.store.get_version(user_id, None)
            if current is None:
                raise NotFoundError("No backup found")
            number = current.version
        else:
            number = parse_version(version)
        if not await self.store.delete_version(user_id, number):
            raise NotFoundError("Unknown backup version")
        return {}

    # --- keys ---

    async def _current(self, user_id: str, version: str | None) -> int:
        """The version to upload to: it must be the current one."""
        number = parse_version(version)
        current = await self.store.get_version(user_id, None)
        if current is None:
            raise NotFoundError("No backup found")
        if current.version != number:
            raise ForbiddenError(
                "Wrong backup version.",
                "M_WRONG_ROOM_KEYS_VERSION",
                current_version=str(current.version),
            )
        return number

    async def _existing(self, user_id: str, version: str | None) -> int:
        """A version to read or delete from: any that exists."""
        number = parse_version(version)
        if await self.store.get_version(user_id, number) is None:
            raise NotFoundError("Unknown backup version")
        return number

    async def put_keys(
        self,
        user_id: str,
        version: str | None,
        body: Any,
        room_id: str | None = None,
        session_id: str | None = None,
    ) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise BadJsonError("Content must be a JSON object.")
        if room_id is not None and session_id is not None:
            keys = [_parse_room_key(room_id, session_id, body)]
        elif room_id is not None:
            keys = _parse_sessions(room_id, body)
        else:
            rooms = body.get("rooms")
            if not isinstance(rooms, Mapping):
                raise BadJsonError("'rooms' must be an object")
            keys = [k for rid, room in rooms.items() for k in _parse_sessions(rid, room)]
        if len(keys) > MAX_KEYS_PER_UPLOAD:
            raise BadJsonError(f"Too many keys (max {MAX_KEYS_PER_UPLOAD})")
        number = await self._current(user_id, version)
        etag, count = await self.store.put_keys(user_id, number, keys, should_replace)
        return {"etag": str(etag), "count": count}

    async def get_keys(
        self,
        user_id: str,
        version: str | None,
        room_id: str | None = None,
        session_id: str | None = None,
    ) -> dict[str, Any]:
        number = await self._existing(user_id, version)
        keys = await self.store.get_keys(user_id, number, room_id, session_id)
        if session_id is not None:
            if not keys:
                raise NotFoundError("No room_keys found")
            return keys[0].to_json()
        if room_id is not None:
            return {"sessions": {k.session_id: k.to_json() for k in keys}}
        rooms: dict[str, Any] = {}
        for key in keys:
            rooms.setdefault(key.room_id, {"sessions": {}})["sessions"][key.session_id] = (
                key.to_json()
            )
        return {"rooms": rooms}

    async def delete_keys(
        self,
        user_id: str,
        version: str | None,
        room_id: str | None = None,
        session_id: str | None = None,
    ) -> dict[str, Any]:
        number = await self._existing(user_id, version)
        etag, count = await self.store.delete_keys(user_id, number, room_id, session_id)
        return {"etag": str(etag), "count": count}

    async def shutdown(self) -> None:
        return None
