"""The event (PDU) type for room versions 1-12, and building local events."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from nacl.signing import VerifyKey

from hamlet.core.canonical_json import (
    JsonDict,
    encode_canonical_json,
    validate_canonical_json,
)
from hamlet.core.crypto import (
    SigningKey,
    compute_reference_hash,
    content_hash_base64,
    event_id_from_reference_hash,
    sign_json,
    verify_signed_json,
)
from hamlet.core.errors import (
    CanonicalJsonError,
    EventFormatError,
    EventTooLargeError,
    InvalidIdError,
    UnsupportedRoomVersionError,
)
from hamlet.core.ids import MAX_ID_LENGTH, UserID, get_domain_from_id, is_valid_event_id
from hamlet.core.redaction import redact
from hamlet.core.room_versions import RoomVersion
from hamlet.core.unpadded_base64 import encode_base64

MAX_PDU_SIZE = 65536
MAX_TYPE_LENGTH = 255
MAX_STATE_KEY_LENGTH = 255
MAX_DEPTH = 2**53 - 1

EventFormat = Literal["client", "federation"]


def _blen(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


class Event:
    """An immutable room event (PDU).

    The PDU is the signed, hashed federation form. ``unsigned`` data is kept
    beside it: it is not covered by hashes or signatures, and
    :meth:`with_unsigned` returns a copy with different unsigned data.
    The constructor trusts its input (e.g. loaded from our own storage);
    use :meth:`from_pdu` for untrusted dicts.
    """

    __slots__ = ("_event_id", "_pdu", "_unsigned", "room_version")

    def __init__(
        self,
        pdu: Mapping[str, Any],
        room_version: RoomVersion,
        *,
        unsigned: Mapping[str, Any] | None = None,
        event_id: str | None = None,
    ) -> None:
        data = copy.deepcopy(dict(pdu))
        pdu_unsigned = data.pop("unsigned", None)
        if room_version.event_id_format != "opaque":
            # v3+: the ID is derived from the content; a copy in the dict is not part of the PDU.
            data.pop("event_id", None)
        self._pdu: JsonDict = data
        if unsigned is None and isinstance(pdu_unsigned, Mapping):
            unsigned = pdu_unsigned
        self._unsigned: JsonDict = copy.deepcopy(dict(unsigned)) if unsigned else {}
        self.room_version = room_version
        self._event_id = event_id

    @classmethod
    def adopt(cls, pdu: JsonDict, room_version: RoomVersion, *, event_id: str) -> Event:
        """Wrap a dict no one else holds (just parsed from storage) without
        the defensive deep copy: reading many stored events copied each twice."""
        event = cls.__new__(cls)
        pdu_unsigned = pdu.pop("unsigned", None)
        if room_version.event_id_format != "opaque":
            pdu.pop("event_id", None)
        event._pdu = pdu
        event._unsigned = dict(pdu_unsigned) if isinstance(pdu_unsigned, dict) else {}
        event.room_version = room_version
        event._event_id = event_id
        return event

    @classmethod
    def from_pdu(cls, pdu: Mapping[str, Any], room_version: RoomVersion) -> Event:
        """Validate an untrusted PDU dict and wrap it. Raises :class:`EventFormatError`."""
        validate_pdu(pdu, room_version)
        return cls(pdu, room_version)

    # --- identity ---

    @property
    def event_id(self) -> str:
        """The event ID (v3+: derived from the reference hash, computed once)."""
        if self._event_id is None:
            self._event_id = compute_event_id(self._pdu, self.room_version)
        return self._event_id

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return self.event_id == other.event_id

    def __hash__(self) -> int:
        return hash(self.event_id)

    def __repr__(self) -> str:
        sk = f", state_key={self.state_key!r}" if self.is_state() else ""
        return f"<Event {self.event_id} type={self.type!r}{sk} sender={self.sender!r}>"

    # --- accessors ---

    @property
    def room_id(self) -> str:
        """The room ID; a v12 create event's is derived from its own event ID."""
        if "room_id" not in self._pdu and self._is_room_defining_create():
            return "!" + self.event_id[1:]
        return str(self._pdu["room_id"])

    def _is_room_defining_create(self) -> bool:
        return self.room_version.room_id_from_create_event and self.type == "m.room.create"

    @property
    def type(self) -> str:
        return str(self._pdu["type"])

    @property
    def state_key(self) -> str | None:
        value = self._pdu.get("state_key")
        return value if isinstance(value, str) else None

    def is_state(self) -> bool:
        """True when the event has a ``state_key`` (even the empty string)."""
        return "state_key" in self._pdu

    @property
    def sender(self) -> str:
        return str(self._pdu["sender"])

    @property
    def content(self) -> Mapping[str, Any]:
        """The content. Treat as read-only."""
        content = self._pdu.get("content")
        return content if isinstance(content, dict) else {}

    @property
    def origin_server_ts(self) -> int:
        return int(self._pdu["origin_server_ts"])

    @property
    def depth(self) -> int:
        return int(self._pdu["depth"])

    @property
    def prev_events(self) -> list[str]:
        """The IDs of the previous events (v1/v2 pairs reduced to their IDs)."""
        return _event_id_refs(self._pdu.get("prev_events", []))

    @property
    def auth_events(self) -> list[str]:
        """The IDs of the auth events (v1/v2 pairs reduced to their IDs)."""
        return _event_id_refs(self._pdu.get("auth_events", []))

    @property
    def hashes(self) -> Mapping[str, Any]:
        return dict(self._pdu.get("hashes", {}))

    @property
    def signatures(self) -> Mapping[str, Mapping[str, str]]:
        return copy.deepcopy(dict(self._pdu.get("signatures", {})))

    @property
    def redacts(self) -> str | None:
        """The redacted event's ID for ``m.room.redaction`` (v11: from content)."""
        if self.type != "m.room.redaction":
            return None
        if self.room_version.redacts_in_content:
            value = self.content.get("redacts")
        else:
            value = self._pdu.get("redacts")
        return value if isinstance(value, str) else None

    @property
    def membership(self) -> str | None:
        """``content.membership`` of an ``m.room.member`` event, else None."""
        if self.type != "m.room.member":
            return None
        value = self.content.get("membership")
        return value if isinstance(value, str) else None

    @property
    def unsigned(self) -> Mapping[str, Any]:
        """Unsigned data (not hashed or signed). Treat as read-only."""
        return self._unsigned

    def with_unsigned(self, unsigned: Mapping[str, Any]) -> Event:
        """A copy of this event with ``unsigned`` replaced."""
        return Event(self._pdu, self.room_version, unsigned=unsigned, event_id=self._event_id)

    # --- serialisation ---

    def get_pdu_json(self, *, include_unsigned: bool = True) -> JsonDict:
        """The federation (PDU) form: a fresh dict, with ``event_id`` only in v1/v2."""
        out = copy.deepcopy(self._pdu)
        if include_unsigned and self._unsigned:
            out["unsigned"] = copy.deepcopy(self._unsigned)
        return out

    def get_redacted_pdu_json(self) -> JsonDict:
        """The PDU after the room version's redaction algorithm."""
        return redact(self._pdu, self.room_version)

    def get_client_event(
        self,
        format: EventFormat = "client",
        *,
        now_ms: int | None = None,
        include_room_id: bool = True,
    ) -> JsonDict:
        """The event as served over the Client-Server API.

        ``client``: ``content``, ``event_id``, ``origin_server_ts``, ``room_id``,
        ``sender``, ``type``, ``state_key`` for state events and ``unsigned``
        when not empty; redactions carry ``redacts`` both at the top level and
        in ``content``. ``federation``: the PDU plus ``event_id``.
        With ``now_ms``, an ``unsigned.age_ts`` is turned into ``unsigned.age``.
        """
        unsigned = copy.deepcopy(self._unsigned)
        if now_ms is not None and isinstance(unsigned.get("age_ts"), int):
            unsigned["age"] = now_ms - unsigned.pop("age_ts")
        if format == "federation":
            out = self.get_pdu_json(include_unsigned=False)
            out["event_id"] = self.event_id
        else:
            out = {
                "content": copy.deepcopy(self._pdu.get("content", {})),
                "event_id": self.event_id,
                "origin_server_ts": self._pdu["origin_server_ts"],
                "sender": self.sender,
                "type": self.type,
            }
            if include_room_id:
                out["room_id"] = self.room_id
            if self.is_state():
                out["state_key"] = self._pdu["state_key"]
            redacts = self.redacts
            if redacts is not None:
                out["redacts"] = redacts
                if isinstance(out["content"], dict):
                    out["content"].setdefault("redacts", redacts)
        if unsigned:
            out["unsigned"] = unsigned
        return out


def _event_id_refs(refs: Any) -> list[str]:
    out: list[str] = []
    for ref in refs:
        if isinstance(ref, list | tuple):
            ref = ref[0] if ref else ""
        out.append(str(ref))
    return out


def compute_event_id(pdu: Mapping[str, Any], room_version: RoomVersion) -> str:
    """The event ID of a PDU.

    v1/v2: the ``event_id`` the PDU carries (:class:`EventFormatError` when
    missing). v3+: ``$`` + the reference hash of the redacted PDU in unpadded
    base64, standard alphabet in v3, URL-safe from v4.
    """
    if room_version.event_id_format == "opaque":
        event_id = pdu.get("event_id")
        if not isinstance(event_id, str) or not _is_valid_opaque_event_id(event_id):
            raise EventFormatError("v1/v2 PDU needs an 'event_id' like '$local:domain'")
        return event_id
    ref_hash = compute_reference_hash(redact(pdu, room_version))
    if room_version.event_id_format == "reference_hash":
        return "$" + encode_base64(ref_hash)
    return event_id_from_reference_hash(ref_hash)


def _is_valid_opaque_event_id(event_id: str) -> bool:
    if not is_valid_event_id(event_id):
        return False
    try:
        get_domain_from_id(event_id)
    except InvalidIdError:
        return False
    return True


def _require(pdu: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = pdu.get(key)
    if value is None or not isinstance(value, kind) or isinstance(value, bool):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise EventFormatError(f"'{key}' must be a {name}")
    return value


def _check_event_id_list(pdu: Mapping[str, Any], key: str, room_version: RoomVersion) -> None:
    value = _require(pdu, key, list)
    if room_version.event_id_format == "opaque":
        for item in value:
            if not (
                isinstance(item, list)
                and len(item) == 2
                and isinstance(item[0], str)
                and _is_valid_opaque_event_id(item[0])
                and isinstance(item[1], dict)
            ):
                raise EventFormatError(f"'{key}' must be a list of [event ID, hashes] pairs")
        return
    for item in value:
        if not isinstance(item, str) or not is_valid_event_id(item):
            raise EventFormatError(f"'{key}' must be a list of event IDs")


def validate_pdu(pdu: Mapping[str, Any], room_version: RoomVersion) -> None:
    """Check the shape and size limits of a PDU in ``room_version``.

    Raises :class:`EventFormatError` (or :class:`EventTooLargeError`).
    Does not check hashes, signatures or authorization.
    """
    event_type = _require(pdu, "type", str)
    defines_room = room_version.room_id_from_create_event and event_type == "m.room.create"
    if defines_room:
        if "room_id" in pdu:
            raise EventFormatError("a v12 m.room.create event must not have a room_id")
        room_id = "!" + compute_event_id(pdu, room_version)[1:]
    else:
        room_id = _require(pdu, "room_id", str)
    sender = _require(pdu, "sender", str)
    content = _require(pdu, "content", dict)
    ts = _require(pdu, "origin_server_ts", int)
    depth = _require(pdu, "depth", int)
    if room_version.event_id_format == "opaque":
        compute_event_id(pdu, room_version)
    _check_event_id_list(pdu, "prev_events", room_version)
    _check_event_id_list(pdu, "auth_events", room_version)
    hashes = _require(pdu, "hashes", dict)
    if not isinstance(hashes.get("sha256"), str):
        raise EventFormatError("'hashes.sha256' must be a string")
    _require(pdu, "signatures", dict)
    if "state_key" in pdu:
        state_key = _require(pdu, "state_key", str)
        if _blen(state_key) > MAX_STATE_KEY_LENGTH:
            raise EventTooLargeError("'state_key' is too long")
    if _blen(event_type) > MAX_TYPE_LENGTH:
        raise EventTooLargeError("'type' is too long")
    if _blen(sender) > MAX_ID_LENGTH:
        raise EventTooLargeError("'sender' is too long")
    if _blen(room_id) > MAX_ID_LENGTH:
        raise EventTooLargeError("'room_id' is too long")
    if not UserID.is_valid(sender):
        raise EventFormatError(f"invalid sender {sender!r}")
    # v12 room IDs are the create event's reference hash, with no domain.
    needs_domain = not room_version.room_id_from_create_event
    if not room_id.startswith("!") or (needs_domain and ":" not in room_id):
        raise EventFormatError(f"invalid room_id {room_id!r}")
    if ts < 0:
        raise EventFormatError("'origin_server_ts' must not be negative")
    if not 0 <= depth <= MAX_DEPTH:
        raise EventFormatError("'depth' out of range")
    if event_type == "m.room.redaction":
        if room_version.redacts_in_content:
            redacts = content.get("redacts")
        else:
            redacts = pdu.get("redacts")
        if not isinstance(redacts, str) or not is_valid_event_id(redacts):
            raise EventFormatError("redaction event needs a valid 'redacts' event ID")
    if event_type == "m.room.member":
        if "state_key" not in pdu:
            raise EventFormatError("m.room.member event needs a state_key")
        if not isinstance(content.get("membership"), str):
            raise EventFormatError("m.room.member event needs a string 'membership'")
    try:
        if room_version.strict_canonical_json:
            validate_canonical_json(dict(pdu))
        # Before v6 integral floats pass (they are hashed as integers); other
        # floats cannot be hashed at all, so such events are refused here too.
        check_pdu_size(pdu)
    except CanonicalJsonError as exc:
        raise EventFormatError(str(exc)) from exc


def check_pdu_size(pdu: Mapping[str, Any]) -> None:
    """Raise :class:`EventTooLargeError` if the canonical PDU exceeds 65536 bytes.

    ``unsigned`` is not counted: it is not part of the event as sent on.
    """
    body = {k: v for k, v in pdu.items() if k != "unsigned"}
    size = len(encode_canonical_json(body))
    if size > MAX_PDU_SIZE:
        raise EventTooLargeError(f"event is {size} bytes, more than {MAX_PDU_SIZE}")


def add_hashes_and_signatures(
    pdu: Mapping[str, Any], room_version: RoomVersion, server_name: str, signing_key: SigningKey
) -> JsonDict:
    """Return a copy of ``pdu`` with ``hashes.sha256`` set and signed by ``server_name``.

    The content hash covers the full event; the signature covers the
    redacted event (so it survives redaction).
    """
    out = dict(pdu)
    out["hashes"] = {"sha256": content_hash_base64(out)}
    signed = sign_json(redact(out, room_version), server_name, signing_key)
    out["signatures"] = signed["signatures"]
    return out


def verify_event_signature(
    pdu: Mapping[str, Any],
    room_version: RoomVersion,
    server_name: str,
    verify_keys: Mapping[str, VerifyKey | str],
) -> None:
    """Check ``server_name``'s signature on a PDU (over its redacted form).

    Raises :class:`~hamlet.core.errors.SignatureError`.
    """
    verify_signed_json(redact(pdu, room_version), server_name, verify_keys)


def build_event(
    room_version: RoomVersion,
    *,
    room_id: str,
    sender: str,
    type: str,
    content: Mapping[str, Any],
    state_key: str | None = None,
    prev_events: Sequence[str],
    auth_events: Sequence[str],
    depth: int,
    origin_server_ts: int,
    server_name: str,
    signing_key: SigningKey,
    redacts: str | None = None,
    unsigned: Mapping[str, Any] | None = None,
) -> Event:
    """Create, hash and sign a new local event.

    For ``m.room.redaction``, ``redacts`` goes into ``content`` in v11 and to
    the top level in v10. v10 PDUs carry ``origin``. Raises
    :class:`EventFormatError` / :class:`EventTooLargeError` on bad input, and
    :class:`UnsupportedRoomVersionError` for v1/v2, whose opaque event IDs
    this server does not mint.
    """
    if room_version.event_id_format == "opaque":
        raise UnsupportedRoomVersionError(
            f"cannot build events in room version {room_version.identifier}"
        )
    body = copy.deepcopy(dict(content))
    pdu: JsonDict = {
        "auth_events": list(auth_events),
        "prev_events": list(prev_events),
        "type": type,
        "sender": sender,
        "content": body,
        "depth": min(depth, MAX_DEPTH),
        "origin_server_ts": origin_server_ts,
    }
    if not (room_version.room_id_from_create_event and type == "m.room.create"):
        # A v12 create event names no room: its reference hash is the room ID.
        pdu["room_id"] = room_id
    if state_key is not None:
        pdu["state_key"] = state_key
    if room_version.include_origin:
        pdu["origin"] = server_name
    if redacts is not None:
        if room_version.redacts_in_content:
            body["redacts"] = redacts
        else:
            pdu["redacts"] = redacts
    try:
        validate_canonical_json(pdu)
    except CanonicalJsonError as exc:
        raise EventFormatError(str(exc)) from exc
    pdu = add_hashes_and_signatures(pdu, room_version, server_name, signing_key)
    validate_pdu(pdu, room_version)
    return Event(pdu, room_version, unsigned=unsigned)
