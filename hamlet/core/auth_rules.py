"""Authorization rules for room versions 10 and 11.

:func:`auth_check` implements the numbered rules from the room version
specs (v10.md / v11.md). It works on plain events and the relevant auth
state; it neither fetches anything nor verifies server signatures (the
caller checks that events are signed by their sender's server before auth).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeGuard

import nacl.exceptions
import nacl.signing

from hamlet.core.canonical_json import encode_canonical_json
from hamlet.core.errors import EventAuthError, EventFormatError, InvalidIdError
from hamlet.core.events import Event
from hamlet.core.ids import UserID, get_domain_from_id
from hamlet.core.power_levels import (
    CREATE_KEY,
    JOIN_RULES_KEY,
    POWER_LEVELS_KEY,
    AuthState,
    StateKey,
    get_named_level,
    get_power_levels_content,
    get_required_level,
    get_room_creator,
    get_room_creators,
    get_user_power_level,
    normalise_power_levels,
)
from hamlet.core.room_versions import SUPPORTED_ROOM_VERSIONS, RoomVersion
from hamlet.core.unpadded_base64 import decode_base64

MEMBER = "m.room.member"
JOIN, INVITE, LEAVE, BAN, KNOCK = "join", "invite", "leave", "ban", "knock"

_PL_INT_FIELDS = (
    "users_default",
    "events_default",
    "state_default",
    "ban",
    "redact",
    "kick",
    "invite",
)
_PL_MAP_FIELDS = ("events", "notifications")


def _domain(user_id: str) -> str:
    try:
        return get_domain_from_id(user_id)
    except InvalidIdError as exc:
        raise EventAuthError(f"invalid ID {user_id!r}") from exc


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def get_membership(auth_state: AuthState, user_id: str) -> str | None:
    """The user's membership in ``auth_state`` (None when there is no member event)."""
    event = auth_state.get((MEMBER, user_id))
    return event.membership if event is not None else None


def get_join_rule(auth_state: AuthState) -> str:
    """The room's join rule; ``invite`` when there is no join rules event (as Synapse)."""
    event = auth_state.get(JOIN_RULES_KEY)
    if event is None:
        return INVITE
    rule = event.content.get("join_rule")
    return rule if isinstance(rule, str) else INVITE


# --- auth events selection ---


def auth_types_for_event(
    room_version: RoomVersion,
    event_type: str,
    state_key: str | None,
    sender: str,
    content: Mapping[str, Any],
) -> set[StateKey]:
    """The ``(type, state_key)`` pairs an event's ``auth_events`` should cover."""
    if event_type == "m.room.create":
        return set()
    wanted: set[StateKey] = {POWER_LEVELS_KEY, (MEMBER, sender)}
    if not room_version.room_id_from_create_event:
        # From v12 the room ID names the create event; listing it is refused.
        wanted.add(CREATE_KEY)
    if event_type == MEMBER and state_key is not None:
        membership = content.get("membership")
        wanted.add((MEMBER, state_key))
        if membership in (JOIN, INVITE, KNOCK):
            wanted.add(JOIN_RULES_KEY)
        if membership == INVITE:
            tpi = content.get("third_party_invite")
            if isinstance(tpi, Mapping):
                signed = tpi.get("signed")
                if isinstance(signed, Mapping) and isinstance(signed.get("token"), str):
                    wanted.add(("m.room.third_party_invite", signed["token"]))
        if membership == JOIN and room_version.restricted_join_rule:
            authoriser = content.get("join_authorised_via_users_server")
            if isinstance(authoriser, str):
                wanted.add((MEMBER, authoriser))
    return wanted


def check_auth_events(
    room_version: RoomVersion, event: Event, auth_events: Iterable[Event]
) -> None:
    """Rule 2: the event's listed ``auth_events`` (already fetched, not rejected).

    Rejects duplicates per ``(type, state_key)``, entries the selection
    algorithm would not pick, a missing create event and foreign room IDs.
    """
    if event.type == "m.room.create":
        return
    allowed = auth_types_for_event(
        room_version, event.type, event.state_key, event.sender, event.content
    )
    seen: set[StateKey] = set()
    for auth_event in auth_events:
        if auth_event.state_key is None:
            raise EventAuthError(f"auth event {auth_event.event_id} is not a state event")
        key = (auth_event.type, auth_event.state_key)
        if key in seen:
            raise EventAuthError(f"duplicate auth event for {key}")
        if key not in allowed:
            raise EventAuthError(f"unexpected auth event for {key}")
        if auth_event.room_id != event.room_id:
            raise EventAuthError(f"auth event {auth_event.event_id} is in a different room")
        seen.add(key)
    if CREATE_KEY not in seen and not room_version.room_id_from_create_event:
        raise EventAuthError("no m.room.create event in auth events")


# --- the rules ---


def auth_check(room_version: RoomVersion, event: Event, auth_state: AuthState) -> None:
    """Raise :class:`EventAuthError` unless ``event`` is allowed given ``auth_state``.

    ``auth_state`` maps ``(type, state_key)`` to the state the event is
    authorised against (at least the pairs from :func:`auth_types_for_event`;
    extra entries are ignored).
    """
    if event.room_id == "" or event.sender == "":
        raise EventAuthError("event has no room_id or sender")

    # Rule 1: m.room.create
    if event.type == "m.room.create":
        _check_create(room_version, event)
        return

    # Rule 2 (the parts that can be judged from the state we were given)
    create = auth_state.get(CREATE_KEY)
    if create is None:
        raise EventAuthError("no m.room.create event in auth events")
    if room_version.room_id_from_create_event and event.room_id != "!" + create.event_id[1:]:
        raise EventAuthError("the room ID is not that of the room's create event")
    for key, auth_event in auth_state.items():
        if (
            key[0]
            in (
                "m.room.create",
                "m.room.power_levels",
                MEMBER,
                "m.room.join_rules",
                "m.room.third_party_invite",
            )
            and auth_event.room_id != event.room_id
        ):
            raise EventAuthError(f"auth event {auth_event.event_id} is in a different room")

    # Rule 3: m.federate
    if create.content.get("m.federate", True) is False and _domain(event.sender) != _domain(
        create.sender
    ):
        raise EventAuthError("this room does not allow users from other servers")

    # v1-v5: m.room.aliases may be set by any server, for its own domain only
    if event.type == "m.room.aliases" and room_version.special_case_aliases_auth:
        if event.state_key is None:
            raise EventAuthError("m.room.aliases needs a state_key")
        if event.state_key != _domain(event.sender):
            raise EventAuthError("m.room.aliases state_key must be the sender's server")
        return

    # Rule 4: m.room.member
    if event.type == MEMBER:
        _check_membership(room_version, event, auth_state, create)
        return

    # Rule 5: sender must be joined
    if get_membership(auth_state, event.sender) != JOIN:
        raise EventAuthError(f"{event.sender} is not in the room")

    sender_level = get_user_power_level(event.sender, auth_state)
    power_levels = get_power_levels_content(auth_state)

    # Rule 6: m.room.third_party_invite
    if event.type == "m.room.third_party_invite":
        if sender_level >= get_named_level(power_levels, "invite"):
            return
        raise EventAuthError("you don't have permission to invite users")

    # Rule 7: required power level for the event type
    required = get_required_level(event.type, event.is_state(), power_levels)
    if required > sender_level:
        raise EventAuthError(
            f"you need power level {required} to send {event.type} events (you have {sender_level})"
        )

    # Rule 8: state keys that look like user IDs are reserved for that user
    state_key = event.state_key
    if state_key is not None and state_key.startswith("@") and state_key != event.sender:
        raise EventAuthError("you are not allowed to set state for another user")

    # Rule 9: m.room.power_levels
    if event.type == "m.room.power_levels":
        _check_power_levels(room_version, event, auth_state, sender_level)

    # v1/v2: redactions are authorised here, by redact level or by the event IDs' domains
    if event.type == "m.room.redaction" and room_version.redaction_in_auth_rules:
        _check_legacy_redaction(event, sender_level, power_levels)

    # Rule 10: allow


def _check_legacy_redaction(
    event: Event, sender_level: int, power_levels: Mapping[str, Any] | None
) -> None:
    if sender_level >= get_named_level(power_levels, "redact"):
        return
    redacts = event.redacts
    if redacts is not None and _domain(redacts) == _domain(event.event_id):
        return
    raise EventAuthError("you may only redact events from your own server")


def _check_create(room_version: RoomVersion, event: Event) -> None:
    if event.prev_events:
        raise EventAuthError("m.room.create must not have prev_events")
    if room_version.room_id_from_create_event:
        if "room_id" in event.get_pdu_json(include_unsigned=False):
            raise EventAuthError("m.room.create must not have a room_id")
        extra = event.content.get("additional_creators", [])
        if not isinstance(extra, list) or not all(
            isinstance(u, str) and UserID.is_valid(u) for u in extra
        ):
            raise EventAuthError("additional_creators must be a list of user IDs")
    elif _domain(event.room_id) != _domain(event.sender):
        raise EventAuthError("room ID domain does not match the creator's server")
    version = event.content.get("room_version", "1")
    if not isinstance(version, str) or version not in SUPPORTED_ROOM_VERSIONS:
        raise EventAuthError(f"unsupported room version {version!r}")
    if not room_version.creator_from_sender and "creator" not in event.content:
        raise EventAuthError("m.room.create content has no 'creator'")


def _check_membership(
    room_version: RoomVersion, event: Event, auth_state: AuthState, create: Event
) -> None:
    target = event.state_key
    membership = event.content.get("membership")
    if target is None or not isinstance(membership, str):
        raise EventAuthError("m.room.member needs a state_key and a membership")

    authoriser = event.content.get("join_authorised_via_users_server")
    if authoriser is not None:
        if not isinstance(authoriser, str):
            raise EventAuthError("join_authorised_via_users_server must be a user ID")
        if _domain(authoriser) not in event.signatures:
            raise EventAuthError("join not signed by the authorising user's server")

    sender = event.sender
    sender_membership = get_membership(auth_state, sender)
    target_membership = get_membership(auth_state, target)
    sender_level = get_user_power_level(sender, auth_state)
    target_level = get_user_power_level(target, auth_state)
    power_levels = get_power_levels_content(auth_state)
    join_rule = get_join_rule(auth_state)

    if membership == JOIN:
        prev = event.prev_events
        if len(prev) == 1 and prev[0] == create.event_id and target == get_room_creator(create):
            return
        if sender != target:
            raise EventAuthError("you cannot make another user join")
        if target_membership == BAN:
            raise EventAuthError(f"{sender} is banned from the room")
        if join_rule in (INVITE, KNOCK):
            if target_membership in (INVITE, JOIN):
                return
            raise EventAuthError("you are not invited to this room")
        if join_rule == "restricted" or (
            join_rule == "knock_restricted" and room_version.knock_restricted_join_rule
        ):
            if target_membership in (JOIN, INVITE):
                return
            if not isinstance(authoriser, str):
                raise EventAuthError("joining a restricted room needs an authorising user")
            if get_membership(auth_state, authoriser) != JOIN:
                raise EventAuthError("the authorising user is not in the room")
            if get_user_power_level(authoriser, auth_state) < get_named_level(
                power_levels, "invite"
            ):
                raise EventAuthError("the authorising user cannot invite")
            return
        if join_rule == "public":
            return
        raise EventAuthError(f"you cannot join a room with join rule {join_rule!r}")

    if membership == INVITE:
        tpi = event.content.get("third_party_invite")
        if tpi is not None:
            _check_third_party_invite(event, tpi, auth_state, target_membership)
            return
        if sender_membership != JOIN:
            raise EventAuthError(f"{sender} is not in the room")
        if target_membership in (JOIN, BAN):
            raise EventAuthError(f"{target} is already in the room or banned")
        if sender_level >= get_named_level(power_levels, "invite"):
            return
        raise EventAuthError("you don't have permission to invite users")

    if membership == LEAVE:
        if sender == target:
            if target_membership in (INVITE, JOIN, KNOCK):
                return
            raise EventAuthError(f"{target} is not in the room")
        if sender_membership != JOIN:
            raise EventAuthError(f"{sender} is not in the room")
        if target_membership == BAN and sender_level < get_named_level(power_levels, "ban"):
            raise EventAuthError("you don't have permission to unban users")
        if sender_level >= get_named_level(power_levels, "kick") and target_level < sender_level:
            return
        raise EventAuthError("you don't have permission to kick this user")

    if membership == BAN:
        if sender_membership != JOIN:
            raise EventAuthError(f"{sender} is not in the room")
        if sender_level >= get_named_level(power_levels, "ban") and target_level < sender_level:
            return
        raise EventAuthError("you don't have permission to ban this user")

    if membership == KNOCK and room_version.knock_join_rule:
        allowed_rules = [KNOCK]
        if room_version.knock_restricted_join_rule:
            allowed_rules.append("knock_restricted")
        if join_rule not in allowed_rules:
            raise EventAuthError("this room does not accept knocks")
        if sender != target:
            raise EventAuthError("you cannot knock on behalf of another user")
        if sender_membership not in (BAN, INVITE, JOIN):
            return
        raise EventAuthError("you cannot knock on a room you are banned from, invited to or in")

    raise EventAuthError(f"unknown membership {membership!r}")


def _check_third_party_invite(
    event: Event, tpi: Any, auth_state: AuthState, target_membership: str | None
) -> None:
    target = event.state_key
    if target_membership == BAN:
        raise EventAuthError(f"{target} is banned from the room")
    if not isinstance(tpi, Mapping) or not isinstance(tpi.get("signed"), Mapping):
        raise EventAuthError("third_party_invite has no 'signed' object")
    signed = tpi["signed"]
    mxid, token = signed.get("mxid"), signed.get("token")
    if not isinstance(mxid, str) or not isinstance(token, str):
        raise EventAuthError("third_party_invite.signed needs 'mxid' and 'token'")
    if mxid != target:
        raise EventAuthError("third_party_invite mxid does not match the invited user")
    invite_event = auth_state.get(("m.room.third_party_invite", token))
    if invite_event is None:
        raise EventAuthError("no m.room.third_party_invite event for this token")
    if invite_event.sender != event.sender:
        raise EventAuthError("the third party invite was sent by someone else")
    if not _third_party_signature_ok(signed, invite_event.content):
        raise EventAuthError("third_party_invite signature does not match any public key")


def _third_party_signature_ok(signed: Mapping[str, Any], invite_content: Mapping[str, Any]) -> bool:
    keys: list[str] = []
    if isinstance(invite_content.get("public_key"), str):
        keys.append(invite_content["public_key"])
    public_keys = invite_content.get("public_keys")
    if isinstance(public_keys, list):
        for entry in public_keys:
            if isinstance(entry, Mapping) and isinstance(entry.get("public_key"), str):
                keys.append(entry["public_key"])
    signatures = signed.get("signatures")
    if not isinstance(signatures, Mapping):
        return False
    try:
        message = encode_canonical_json({k: v for k, v in signed.items() if k != "signatures"})
    except EventFormatError:
        return False
    for server_sigs in signatures.values():
        if not isinstance(server_sigs, Mapping):
            continue
        for key_name, sig in server_sigs.items():
            if not isinstance(key_name, str) or not key_name.startswith("ed25519:"):
                continue
            if not isinstance(sig, str):
                continue
            for key_b64 in keys:
                try:
                    nacl.signing.VerifyKey(decode_base64(key_b64)).verify(
                        message, decode_base64(sig)
                    )
                except (nacl.exceptions.BadSignatureError, EventFormatError, ValueError):
                    continue
                except nacl.exceptions.CryptoError:
                    continue
                return True
    return False


def validate_power_levels_content(room_version: RoomVersion, content: Mapping[str, Any]) -> None:
    """Raise :class:`EventAuthError` unless ``content`` is a well-formed power levels content."""
    _validate_power_levels_content(room_version, normalise_power_levels(content, room_version))


def _validate_power_levels_content(room_version: RoomVersion, content: Mapping[str, Any]) -> None:
    if room_version.integer_power_levels:
        for name in _PL_INT_FIELDS:
            if name in content and not _is_int(content[name]):
                raise EventAuthError(f"power level {name!r} must be an integer")
        for name in _PL_MAP_FIELDS:
            if name in content:
                value = content[name]
                if not isinstance(value, Mapping) or not all(_is_int(v) for v in value.values()):
                    raise EventAuthError(f"power level {name!r} must map to integers")
    users = content.get("users", {})
    if not isinstance(users, Mapping):
        raise EventAuthError("power level 'users' must be an object")
    for user_id, level in users.items():
        if not isinstance(user_id, str) or not UserID.is_valid(user_id):
            raise EventAuthError(f"power level 'users' has an invalid user ID {user_id!r}")
        if not _is_int(level):
            raise EventAuthError(f"power level for {user_id} must be an integer")


def _check_power_levels(
    room_version: RoomVersion, event: Event, auth_state: AuthState, sender_level: int
) -> None:
    new = normalise_power_levels(event.content, room_version)
    _validate_power_levels_content(room_version, new)
    create = auth_state.get(CREATE_KEY)
    if room_version.room_id_from_create_event and create is not None:
        users = new.get("users", {})
        if any(creator in users for creator in get_room_creators(create)):
            raise EventAuthError("room creators cannot be given a power level")
    current_event = auth_state.get(POWER_LEVELS_KEY)
    if current_event is None:
        return
    old = normalise_power_levels(current_event.content, room_version)

    for name in _PL_INT_FIELDS:
        old_value, new_value = old.get(name), new.get(name)
        if old_value == new_value:
            continue
        if _is_int(old_value) and old_value > sender_level:
            raise EventAuthError(f"you cannot change {name!r} from a level above your own")
        if _is_int(new_value) and new_value > sender_level:
            raise EventAuthError(f"you cannot set {name!r} above your own level")

    map_fields = ["events"]
    if room_version.limit_notifications_power_levels:
        map_fields.append("notifications")
    for name in map_fields:
        old_map = old.get(name)
        new_map = new.get(name)
        old_map = old_map if isinstance(old_map, Mapping) else {}
        new_map = new_map if isinstance(new_map, Mapping) else {}
        for key in set(old_map) | set(new_map):
            old_value, new_value = old_map.get(key), new_map.get(key)
            if old_value == new_value:
                continue
            if key in old_map and _is_int(old_value) and old_value > sender_level:
                raise EventAuthError(f"you cannot change {name}.{key} from a level above your own")
            if key in new_map and _is_int(new_value) and new_value > sender_level:
                raise EventAuthError(f"you cannot set {name}.{key} above your own level")

    old_users = old.get("users")
    new_users = new.get("users")
    old_users = old_users if isinstance(old_users, Mapping) else {}
    new_users = new_users if isinstance(new_users, Mapping) else {}
    for user_id in set(old_users) | set(new_users):
        old_value, new_value = old_users.get(user_id), new_users.get(user_id)
        if old_value == new_value:
            continue
        if user_id in old_users and user_id != event.sender:
            if _is_int(old_value) and old_value >= sender_level:
                raise EventAuthError(f"you cannot change the level of {user_id}")
        if user_id in new_users and _is_int(new_value) and new_value > sender_level:
            raise EventAuthError(f"you cannot give {user_id} a level above your own")


# --- redactions (not part of auth for v3+; see "Handling redactions") ---


def redaction_allowed(redaction: Event, original: Event | None, auth_state: AuthState) -> bool:
    """Whether a received redaction should be applied (federation rule).

    True when the redacting sender has the redact level, or (given the
    original event) both senders are on the same server.
    """
    if may_redact_others(redaction.sender, auth_state):
        return True
    if original is None:
        return False
    return _domain(original.sender) == _domain(redaction.sender)


def may_redact_others(user_id: str, auth_state: AuthState) -> bool:
    """Whether `user_id` has the room's redact power level."""
    level = get_user_power_level(user_id, auth_state)
    return level >= get_named_level(get_power_levels_content(auth_state), "redact")


def earlier_redaction_applies(original: Event, redacter: str, redacter_may_redact: bool) -> bool:
    """Whether a redaction stored before the event it names applies to it
    (the federation rule of `redaction_allowed`, with the redacter's power
    level from the redaction's own state)."""
    if original.type == "m.room.create":
        return False
    return redacter_may_redact or _domain(original.sender) == _domain(redacter)


def user_may_redact(user_id: str, original_sender: str, auth_state: AuthState) -> bool:
    """Client-side check: a user may redact their own events, or others' at the redact level."""
    if user_id == original_sender:
        return True
    level = get_user_power_level(user_id, auth_state)
    return level >= get_named_level(get_power_levels_content(auth_state), "redact")
