"""The room versions this server knows and how they differ.

Two sets matter: :data:`KNOWN_ROOM_VERSIONS` are the versions local users may
create and upgrade to (and that capabilities advertise); every version in
:data:`SUPPORTED_ROOM_VERSIONS` can be parsed, hashed, redacted and checked
for events arriving over federation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hamlet.core.errors import UnsupportedRoomVersionError


@dataclass(frozen=True, slots=True)
class RoomVersion:
    """Behaviour switches for one room version.

    Only the differences between versions are modelled; everything they
    share is simply implemented.
    """

    identifier: str
    #: ``"opaque"`` (v1/v2: ``$local:domain`` carried in the PDU's ``event_id``,
    #: ``prev_events``/``auth_events`` as ``[event_id, hashes]`` pairs),
    #: ``"reference_hash"`` (v3: ``$`` + standard unpadded base64) or
    #: ``"reference_hash_urlsafe"`` (v4+: URL-safe unpadded base64).
    event_id_format: str
    #: Which redaction algorithm applies, named by the version that introduced
    #: it: ``"v1"`` (keeps ``m.room.aliases``), ``"v6"``, ``"v8"`` (join rules
    #: ``allow``), ``"v9"`` (``join_authorised_via_users_server``) or ``"v11"``.
    redaction_rules: str
    #: v11: ``m.room.create`` has no ``creator``; the creator is the create event's sender.
    creator_from_sender: bool
    #: v11: ``redacts`` lives in ``content`` instead of at the top level.
    redacts_in_content: bool
    #: PDUs carry a top-level ``origin`` (up to v10); v11+ ones need not.
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
    #: The ``m.room.aliases`` auth rule (v1-v5: only the domain in the state key may send).
    special_case_aliases_auth: bool = False
    #: Redactions are checked by the auth rules (v1/v2, comparing event ID
    #: domains); from v3 they are checked when served ("handling redactions").
    redaction_in_auth_rules: bool = False
    #: Signing keys must be valid at ``origin_server_ts`` (v5+).
    enforce_key_validity: bool = True
    #: v12: the create event has no ``room_id``; the room ID is ``!`` + its
    #: reference hash, and its sender and ``additional_creators`` have infinite power.
    room_id_from_create_event: bool = False
    #: State resolution: ``"v1"`` (room version 1), ``"v2"`` (2-11) or ``"v2.1"``
    #: (v12: the first auth-check round starts empty; the conflicted state subgraph counts).
    state_res: str = "v2"


ROOM_VERSION_1 = RoomVersion(
    identifier="1",
    event_id_format="opaque",
    redaction_rules="v1",
    creator_from_sender=False,
    redacts_in_content=False,
    include_origin=True,
    restricted_join_rule=False,
    knock_restricted_join_rule=False,
    knock_join_rule=False,
    integer_power_levels=False,
    strict_canonical_json=False,
    limit_notifications_power_levels=False,
    special_case_aliases_auth=True,
    redaction_in_auth_rules=True,
    enforce_key_validity=False,
    state_res="v1",
)
ROOM_VERSION_2 = replace(ROOM_VERSION_1, identifier="2", state_res="v2")
ROOM_VERSION_3 = replace(
    ROOM_VERSION_2,
    identifier="3",
    event_id_format="reference_hash",
    redaction_in_auth_rules=False,
)
ROOM_VERSION_4 = replace(ROOM_VERSION_3, identifier="4", event_id_format="reference_hash_urlsafe")
ROOM_VERSION_5 = replace(ROOM_VERSION_4, identifier="5", enforce_key_validity=True)
ROOM_VERSION_6 = replace(
    ROOM_VERSION_5,
    identifier="6",
    redaction_rules="v6",
    strict_canonical_json=True,
    limit_notifications_power_levels=True,
    special_case_aliases_auth=False,
)
ROOM_VERSION_7 = replace(ROOM_VERSION_6, identifier="7", knock_join_rule=True)
ROOM_VERSION_8 = replace(
    ROOM_VERSION_7, identifier="8", redaction_rules="v8", restricted_join_rule=True
)
ROOM_VERSION_9 = replace(ROOM_VERSION_8, identifier="9", redaction_rules="v9")
ROOM_VERSION_10 = replace(
    ROOM_VERSION_9,
    identifier="10",
    knock_restricted_join_rule=True,
    integer_power_levels=True,
)
ROOM_VERSION_11 = replace(
    ROOM_VERSION_10,
    identifier="11",
    redaction_rules="v11",
    creator_from_sender=True,
    redacts_in_content=True,
    include_origin=False,
)
ROOM_VERSION_12 = replace(
    ROOM_VERSION_11, identifier="12", room_id_from_create_event=True, state_res="v2.1"
)

#: Every version whose events this server can parse and check (federation).
SUPPORTED_ROOM_VERSIONS: dict[str, RoomVersion] = {
    v.identifier: v
    for v in (
        ROOM_VERSION_1,
        ROOM_VERSION_2,
        ROOM_VERSION_3,
        ROOM_VERSION_4,
        ROOM_VERSION_5,
        ROOM_VERSION_6,
        ROOM_VERSION_7,
        ROOM_VERSION_8,
        ROOM_VERSION_9,
        ROOM_VERSION_10,
        ROOM_VERSION_11,
        ROOM_VERSION_12,
    )
}

#: The versions local users may create or upgrade to, as advertised in
#: capabilities. Older ones lack local event building (v1/v2 event IDs).
KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {
    ROOM_VERSION_10.identifier: ROOM_VERSION_10,
    ROOM_VERSION_11.identifier: ROOM_VERSION_11,
    ROOM_VERSION_12.identifier: ROOM_VERSION_12,
}

DEFAULT_ROOM_VERSION = "10"


def get_room_version(identifier: str) -> RoomVersion:
    """Look up any supported room version, raising :class:`UnsupportedRoomVersionError`."""
    try:
        return SUPPORTED_ROOM_VERSIONS[identifier]
    except KeyError:
        raise UnsupportedRoomVersionError(f"unsupported room version {identifier!r}") from None
