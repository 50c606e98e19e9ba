"""The room versions this server implements and how they differ."""

from __future__ import annotations

from dataclasses import dataclass

from hamlet.core.errors import UnsupportedRoomVersionError


@dataclass(frozen=True, slots=True)
class RoomVersion:
    """Behaviour switches for one room version.

    Only the differences that matter between the versions we support are
    modelled; everything both versions share is simply implemented.
    """

    identifier: str
    #: Event IDs are ``$`` + URL-safe unpadded base64 of the reference hash (v4+).
    event_id_format: str
    #: Which redaction algorithm applies: ``"v10"`` (v9 fragment) or ``"v11"``.
    redaction_rules: str
    #: v11: ``m.room.create`` has no ``creator``; the creator is the create event's sender.
    creator_from_sender: bool
    #: v11: ``redacts`` lives in ``content`` instead of at the top level.
    redacts_in_content: bool
    #: v10 PDUs carry a top-level ``origin``; v11 ones need not.
    include_origin: bool
    #: ``restricted`` join rule (v8+).
    restricted_join_rule: bool
    #: ``knock_restricted`` join rule (v10+).
    knock_restricted_join_rule: bool
    #: ``knock`` join rule / membership (v7+).
    knock_join_rule: bool
    #: Power level values must be integers, not strings (v10+).
    integer_power_levels: bool
    #: Events must follow the strict canonical JSON rules (v6+).
    strict_canonical_json: bool
    #: ``notifications`` changes are subject to power level checks (v6+).
    limit_notifications_power_levels: bool
    #: State resolution: ``"v2"`` (room versions 2-11) or ``"v2.1"`` (v12: the
    #: first auth-check round starts empty; the conflicted state subgraph counts).
    state_res: str = "v2"


ROOM_VERSION_10 = RoomVersion(
    identifier="10",
    event_id_format="reference_hash_urlsafe",
    redaction_rules="v10",
    creator_from_sender=False,
    redacts_in_content=False,
    include_origin=True,
    restricted_join_rule=True,
    knock_restricted_join_rule=True,
    knock_join_rule=True,
    integer_power_levels=True,
    strict_canonical_json=True,
    limit_notifications_power_levels=True,
)

ROOM_VERSION_11 = RoomVersion(
    identifier="11",
    event_id_format="reference_hash_urlsafe",
    redaction_rules="v11",
    creator_from_sender=True,
    redacts_in_content=True,
    include_origin=False,
    restricted_join_rule=True,
    knock_restricted_join_rule=True,
    knock_join_rule=True,
    integer_power_levels=True,
    strict_canonical_json=True,
    limit_notifications_power_levels=True,
)

KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {
    ROOM_VERSION_10.identifier: ROOM_VERSION_10,
    ROOM_VERSION_11.identifier: ROOM_VERSION_11,
}

DEFAULT_ROOM_VERSION = "10"


def get_room_version(identifier: str) -> RoomVersion:
    """Look up a room version, raising :class:`UnsupportedRoomVersionError`."""
    try:
        return KNOWN_ROOM_VERSIONS[identifier]
    except KeyError:
        raise UnsupportedRoomVersionError(f"unsupported room version {identifier!r}") from None
