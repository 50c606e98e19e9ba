"""Authorization rules for room versions 10 and 11, one case per rule."""

from __future__ import annotations

from typing import Any

import pytest

from hamlet.core.auth_rules import (
    auth_check,
    auth_types_for_event,
    check_auth_events,
    earlier_redaction_applies,
    may_redact_others,
    redaction_allowed,
    user_may_redact,
)
from hamlet.core.crypto import sign_json, signing_key_from_seed
from hamlet.core.errors import EventAuthError
from hamlet.core.events import Event
from hamlet.core.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from hamlet.core.unpadded_base64 import encode_base64

from .helpers import Room

V10 = KNOWN_ROOM_VERSIONS["10"]
V11 = KNOWN_ROOM_VERSIONS["11"]
BOTH = pytest.mark.parametrize("rv", [V10, V11], ids=["v10", "v11"])

ALICE, BOB, CAROL, MALLORY = "@alice:test", "@bob:test", "@carol:test", "@mallory:test"


def allowed(room: Room, event: Event) -> None:
    auth_check(room.room_version, event, room.state)


def refused(room: Room, event: Event, match: str | None = None) -> None:
    with pytest.raises(EventAuthError, match=match):
        auth_check(room.room_version, event, room.state)


def joined_room(rv: RoomVersion, join_rule: str = "public", **power: Any) -> Room:
    room = Room(rv, ALICE)
    room.standard(join_rule, **power)
    return room


# --- rule 1: m.room.create ---


@BOTH
def test_create_allowed(rv: RoomVersion) -> None:
    room = Room(rv, ALICE)
    allowed(room, room.make("m.room.create", ALICE, _create_content(rv), ""))


def _create_content(rv: RoomVersion, **extra: Any) -> dict[str, Any]:
    content: dict[str, Any] = {"room_version": rv.identifier, **extra}
    if not rv.creator_from_sender:
        content["creator"] = ALICE
    return content


@BOTH
def test_create_with_prev_events_refused(rv: RoomVersion) -> None:
    room = Room(rv, ALICE)
    event = room.make("m.room.create", ALICE, _create_content(rv), "", prev_events=["$x"])
    refused(room, event, "prev_events")


@BOTH
def test_create_room_id_domain_must_match_sender(rv: RoomVersion) -> None:
    room = Room(rv, "@alice:other")
    refused(room, room.make("m.room.create", "@alice:other", _create_content(rv), ""))


@BOTH
def test_create_unknown_room_version_refused(rv: RoomVersion) -> None:
    room = Room(rv, ALICE)
    content = _create_content(rv)
    content["room_version"] = "999"
    refused(room, room.make("m.room.create", ALICE, content, ""), "room version")


def test_create_without_creator_v10_refused_v11_allowed() -> None:
    room10 = Room(V10, ALICE)
    refused(room10, room10.make("m.room.create", ALICE, {"room_version": "10"}, ""), "creator")
    room11 = Room(V11, ALICE)
    allowed(room11, room11.make("m.room.create", ALICE, {"room_version": "11"}, ""))


# --- rule 2/3: auth events and m.federate ---


@BOTH
def test_no_create_event_refused(rv: RoomVersion) -> None:
    room = joined_room(rv)
    event = room.make("m.room.message", ALICE, {"body": "x"})
    with pytest.raises(EventAuthError, match="create"):
        auth_check(rv, event, {k: v for k, v in room.state.items() if k[0] != "m.room.create"})


@BOTH
def test_auth_event_from_other_room_refused(rv: RoomVersion) -> None:
    room = joined_room(rv)
    event = room.make("m.room.message", ALICE, {"body": "x"}, room_id="!other:test")
    refused(room, event, "different room")


@BOTH
def test_m_federate_false_refuses_other_servers(rv: RoomVersion) -> None:
    room = Room(rv, ALICE)
    room.apply(room.make("m.room.create", ALICE, _create_content(rv, **{"m.federate": False}), ""))
    room.set_member(ALICE, ALICE, "join")
    room.send("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
    refused(room, room.member("@eve:other", "@eve:other", "join"), "other servers")
    allowed(room, room.member(BOB, BOB, "join"))


@BOTH
def test_check_auth_events_selection(rv: RoomVersion) -> None:
    room = joined_room(rv)
    event = room.member(BOB, BOB, "join")
    create = room.state[("m.room.create", "")]
    pl = room.state[("m.room.power_levels", "")]
    jr = room.state[("m.room.join_rules", "")]
    check_auth_events(rv, event, [create, pl, jr])
    with pytest.raises(EventAuthError, match="duplicate"):
        check_auth_events(rv, event, [create, pl, pl])
    with pytest.raises(EventAuthError, match="unexpected"):
        check_auth_events(rv, event, [create, room.state[("m.room.member", ALICE)]])
    with pytest.raises(EventAuthError, match="create"):
        check_auth_events(rv, event, [pl])


@BOTH
def test_auth_types_for_event(rv: RoomVersion) -> None:
    assert auth_types_for_event(rv, "m.room.create", "", ALICE, {}) == set()
    base = {("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.member", ALICE)}
    assert auth_types_for_event(rv, "m.room.message", None, ALICE, {}) == base
    assert auth_types_for_event(rv, "m.room.member", BOB, ALICE, {"membership": "ban"}) == base | {
        ("m.room.member", BOB)
    }
    join = auth_types_for_event(
        rv,
        "m.room.member",
        BOB,
        BOB,
        {"membership": "join", "join_authorised_via_users_server": ALICE},
    )
    assert join == {
        ("m.room.create", ""),
        ("m.room.power_levels", ""),
        ("m.room.member", BOB),
        ("m.room.join_rules", ""),
        ("m.room.member", ALICE),
    }
    tpi = auth_types_for_event(
        rv,
        "m.room.member",
        BOB,
        ALICE,
        {"membership": "invite", "third_party_invite": {"signed": {"token": "tok"}}},
    )
    assert ("m.room.third_party_invite", "tok") in tpi and ("m.room.join_rules", "") in tpi


# --- rule 4: membership ---


@BOTH
def test_creator_first_join_allowed(rv: RoomVersion) -> None:
    room = Room(rv, ALICE)
    room.create()
    allowed(room, room.member(ALICE, ALICE, "join"))
    # someone else cannot use the "first join" shortcut
    refused(room, room.member(BOB, BOB, "join"))


@BOTH
def test_member_without_membership_refused(rv: RoomVersion) -> None:
    room = joined_room(rv)
    good = room.member(BOB, BOB, "join")
    pdu = good.get_pdu_json()
    pdu["content"] = {}
    refused(room, Event(pdu, rv))


@BOTH
def test_join_public(rv: RoomVersion) -> None:
    room = joined_room(rv, "public")
    allowed(room, room.member(BOB, BOB, "join"))


@BOTH
def test_join_for_someone_else_refused(rv: RoomVersion) -> None:
    room = joined_room(rv, "public")
    refused(room, room.member(ALICE, BOB, "join"), "another user")


@BOTH
@pytest.mark.parametrize("rule", ["invite", "knock"])
def test_join_invite_only(rv: RoomVersion, rule: str) -> None:
    room = joined_room(rv, rule)
    refused(room, room.member(BOB, BOB, "join"), "not invited")
    room.set_member(ALICE, BOB, "invite")
    allowed(room, room.member(BOB, BOB, "join"))


@BOTH
def test_join_after_ban_refused(rv: RoomVersion) -> None:
    room = joined_room(rv, "public")
    room.set_member(ALICE, BOB, "ban")
    refused(room, room.member(BOB, BOB, "join"), "banned")


@BOTH
def test_join_unknown_rule_refused(rv: RoomVersion) -> None:
    room = joined_room(rv, "private")
    refused(room, room.member(BOB, BOB, "join"))


@BOTH
@pytest.mark.parametrize("rule", ["restricted", "knock_restricted"])
def test_join_restricted(rv: RoomVersion, rule: str) -> None:
    room = joined_room(rv, rule)
    # no authorising user
    refused(room, room.member(BOB, BOB, "join"), "authorising")
    # authorised by a joined user who may invite (signature from their server present)
    allowed(room, room.member(BOB, BOB, "join", join_authorised_via_users_server=ALICE))
    # authoriser not in the room
    refused(room, room.member(BOB, BOB, "join", join_authorised_via_users_server=CAROL))
    # authoriser lacking the invite level
    room2 = joined_room(rv, rule, invite=50)
    room2.send("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
    room2.set_member(CAROL, CAROL, "join")
    room2.send("m.room.join_rules", ALICE, {"join_rule": rule}, "")
    refused(room2, room2.member(BOB, BOB, "join", join_authorised_via_users_server=CAROL), "invite")
    # already invited: no authoriser needed
    room.set_member(ALICE, BOB, "invite")
    allowed(room, room.member(BOB, BOB, "join"))


@BOTH
def test_restricted_join_needs_authorising_server_signature(rv: RoomVersion) -> None:
    room = joined_room(rv, "restricted")
    room.send("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
    room.set_member("@dave:other", "@dave:other", "join")
    room.send("m.room.power_levels", ALICE, {"users": {ALICE: 100, "@dave:other": 100}}, "")
    room.send("m.room.join_rules", ALICE, {"join_rule": "restricted"}, "")
    # the event is only signed by "test", not by "other"
    event = room.member(BOB, BOB, "join", join_authorised_via_users_server="@dave:other")
    refused(room, event, "signed")


@BOTH
def test_invite_rules(rv: RoomVersion) -> None:
    room = joined_room(rv, "invite", invite=50)
    room.send("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
    room.set_member(CAROL, CAROL, "join")
    # non-member cannot invite
    refused(room, room.member(MALLORY, BOB, "invite"), "not in the room")
    # member below invite level cannot invite
    refused(room, room.member(CAROL, BOB, "invite"), "permission")
    # member at invite level can
    allowed(room, room.member(ALICE, BOB, "invite"))
    # cannot invite someone already joined or banned
    refused(room, room.member(ALICE, CAROL, "invite"))
    room.set_member(ALICE, MALLORY, "ban")
    refused(room, room.member(ALICE, MALLORY, "invite"))


@BOTH
def test_invite_default_level_zero(rv: RoomVersion) -> None:
    room = joined_room(rv, "public")
    room.set_member(CAROL, CAROL, "join")
    allowed(room, room.member(CAROL, BOB, "invite"))


@BOTH
def test_leave_self(rv: RoomVersion) -> None:
    room = joined_room(rv, "public")
    refused(room, room.member(BOB, BOB, "leave"), "not in the room")
    room.set_member(BOB, BOB, "join")
    allowed(room, room.member(BOB, BOB, "leave"))
    room.set_member(BOB, BOB, "leave")
    refused(room, room.member(BOB, BOB, "leave"))
    # rejecting an invite
    room.set_member(ALICE, CAROL, "invite")
    allowed(room, room.member(CAROL, CAROL, "leave"))


@BOTH
def test_kick(rv: RoomVersion) -> None:
    room = joined_room(rv, "public")
    room.set_member(BOB, BOB, "join")
    room.set_member(CAROL, CAROL, "join")
    allowed(room, room.member(ALICE, BOB, "leave"))
    # bob (0) cannot kick carol (0): below kick level and not above target
    refused(room, room.member(BOB, CAROL, "leave"), "kick")
    # bob cannot kick alice even with the kick level if alice is higher
    room.send("m.room.power_levels", ALICE, {"users": {ALICE: 100, BOB: 50}}, "")
    allowed(room, room.member(BOB, CAROL, "leave"))
    refused(room, room.member(BOB, ALICE, "leave"))
    # non-members cannot kick
    refused(room, room.member(MALLORY, CAROL, "leave"), "not in the room")


@BOTH
def test_ban_and_unban(rv: RoomVersion) -> None:
    room = joined_room(rv, "public")
    room.set_member(BOB, BOB, "join")
    room.set_member(CAROL, CAROL, "join")
    refused(room, room.member(BOB, CAROL, "ban"), "ban")
    refused(room, room.member(MALLORY, CAROL, "ban"), "not in the room")
    allowed(room, room.member(ALICE, CAROL, "ban"))
    room.set_member(ALICE, CAROL, "ban")
    # unban needs kick and ban levels; bob at 50 with ban 60 cannot unban
    room.send("m.room.power_levels", ALICE, {"users": {ALICE: 100, BOB: 50}, "ban": 60}, "")
    refused(room, room.member(BOB, CAROL, "leave"), "unban")
    allowed(room, room.member(ALICE, CAROL, "leave"))


@BOTH
@pytest.mark.parametrize("rule", ["knock", "knock_restricted"])
def test_knock(rv: RoomVersion, rule: str) -> None:
    room = joined_room(rv, rule)
    allowed(room, room.member(BOB, BOB, "knock"))
    refused(room, room.member(ALICE, BOB, "knock"), "behalf")
    room.set_member(ALICE, CAROL, "invite")
    refused(room, room.member(CAROL, CAROL, "knock"))
    room.set_member(ALICE, MALLORY, "ban")
    refused(room, room.member(MALLORY, MALLORY, "knock"))


@BOTH
@pytest.mark.parametrize("rule", ["public", "invite", "restricted"])
def test_knock_refused_for_other_rules(rv: RoomVersion, rule: str) -> None:
    room = joined_room(rv, rule)
    refused(room, room.member(BOB, BOB, "knock"), "knock")


@BOTH
def test_leave_after_knock(rv: RoomVersion) -> None:
    room = joined_room(rv, "knock")
    room.set_member(BOB, BOB, "knock")
    allowed(room, room.member(BOB, BOB, "leave"))


@BOTH
def test_unknown_membership_refused(rv: RoomVersion) -> None:
    room = joined_room(rv, "public")
    refused(room, room.member(BOB, BOB, "dance"), "unknown membership")


@BOTH
def test_third_party_invite(rv: RoomVersion) -> None:
    room = joined_room(rv, "invite")
    idp_key = signing_key_from_seed(bytes([7] * 32), "0")
    room.send(
        "m.room.third_party_invite",
        ALICE,
        {"display_name": "b...", "public_key": encode_base64(bytes(idp_key.verify_key))},
        "tok",
    )
    signed = sign_json({"mxid": BOB, "token": "tok"}, "idp.example", idp_key)
    allowed(room, room.member(ALICE, BOB, "invite", third_party_invite={"signed": signed}))
    # invite event sent by someone else
    room.set_member(CAROL, CAROL, "invite")
    room.set_member(CAROL, CAROL, "join")
    refused(room, room.member(CAROL, BOB, "invite", third_party_invite={"signed": signed}))
    # wrong mxid, missing token, bad signature
    refused(room, room.member(ALICE, CAROL, "invite", third_party_invite={"signed": signed}))
    bad = dict(signed, token="other")
    refused(room, room.member(ALICE, BOB, "invite", third_party_invite={"signed": bad}))
    forged = sign_json(
        {"mxid": BOB, "token": "tok"}, "idp.example", signing_key_from_seed(bytes(32), "0")
    )
    refused(room, room.member(ALICE, BOB, "invite", third_party_invite={"signed": forged}))
    refused(room, room.member(ALICE, BOB, "invite", third_party_invite={}))


# --- rules 5 to 8 ---


@BOTH
def test_non_member_cannot_send(rv: RoomVersion) -> None:
    room = joined_room(rv, "public")
    refused(room, room.make("m.room.message", BOB, {"body": "hi"}), "not in the room")
    room.set_member(ALICE, BOB, "invite")
    refused(room, room.make("m.room.message", BOB, {"body": "hi"}), "not in the room")
    room.set_member(BOB, BOB, "join")
    allowed(room, room.make("m.room.message", BOB, {"body": "hi"}))


@BOTH
def test_third_party_invite_event_needs_invite_level(rv: RoomVersion) -> None:
    room = joined_room(rv, "public", invite=50)
    room.set_member(BOB, BOB, "join")
    refused(room, room.make("m.room.third_party_invite", BOB, {"public_key": "x"}, "t"))
    allowed(room, room.make("m.room.third_party_invite", ALICE, {"public_key": "x"}, "t"))


@BOTH
def test_events_default_for_messages(rv: RoomVersion) -> None:
    room = joined_room(rv, "public", events_default=10)
    room.set_member(BOB, BOB, "join")
    refused(room, room.make("m.room.message", BOB, {"body": "hi"}), "power level 10")
    allowed(room, room.make("m.room.message", ALICE, {"body": "hi"}))


@BOTH
def test_state_default_and_events_override(rv: RoomVersion) -> None:
    room = joined_room(rv, "public", events={"m.room.topic": 0})
    room.set_member(BOB, BOB, "join")
    # state_default is 50 when unspecified
    refused(room, room.make("m.room.name", BOB, {"name": "n"}, ""))
    allowed(room, room.make("m.room.topic", BOB, {"topic": "t"}, ""))
    allowed(room, room.make("m.room.name", ALICE, {"name": "n"}, ""))


@BOTH
def test_users_default(rv: RoomVersion) -> None:
    room = joined_room(rv, "public", users_default=50)
    room.set_member(BOB, BOB, "join")
    allowed(room, room.make("m.room.name", BOB, {"name": "n"}, ""))


@BOTH
def test_no_power_levels_event_creator_has_100(rv: RoomVersion) -> None:
    room = Room(rv, ALICE)
    room.create()
    room.set_member(ALICE, ALICE, "join")
    allowed(room, room.make("m.room.join_rules", ALICE, {"join_rule": "public"}, ""))
    room.send("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
    room.set_member(BOB, BOB, "join")
    allowed(room, room.make("m.room.message", BOB, {"body": "x"}))
    refused(room, room.make("m.room.name", BOB, {"name": "x"}, ""))
    allowed(room, room.member(ALICE, BOB, "ban"))


@BOTH
def test_user_state_key_reserved(rv: RoomVersion) -> None:
    room = joined_room(rv, "public", state_default=0)
    room.set_member(BOB, BOB, "join")
    allowed(room, room.make("org.example.thing", BOB, {}, BOB))
    refused(room, room.make("org.example.thing", BOB, {}, ALICE), "another user")
    refused(room, room.make("org.example.thing", ALICE, {}, BOB), "another user")


# --- rule 9: power levels ---


def pl_room(rv: RoomVersion, **content: Any) -> Room:
    room = Room(rv, ALICE)
    room.create()
    room.set_member(ALICE, ALICE, "join")
    base: dict[str, Any] = {"users": {ALICE: 100, BOB: 50}, "state_default": 50}
    base.update(content)
    room.send("m.room.power_levels", ALICE, base, "")
    room.send("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
    room.set_member(BOB, BOB, "join")
    room.set_member(CAROL, CAROL, "join")
    return room


def pl_event(room: Room, sender: str, **changes: Any) -> Event:
    content = dict(room.state[("m.room.power_levels", "")].content)
    for key, value in changes.items():
        if value is None:
            content.pop(key, None)
        else:
            content[key] = value
    return room.make("m.room.power_levels", sender, content, "")


@BOTH
@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ban", "50"),
        ("users_default", 1.0),
        ("kick", True),
        ("events", {"m.room.name": "50"}),
        ("notifications", {"room": "50"}),
        ("events", []),
        ("users", {"not-a-user": 50}),
        ("users", {BOB: "50"}),
    ],
)
def test_power_levels_must_be_integers(rv: RoomVersion, key: str, value: Any) -> None:
    room = pl_room(rv)
    content = {"users": {ALICE: 100}, key: value}
    pdu = room.make("m.room.power_levels", ALICE, {"users": {ALICE: 100}}, "").get_pdu_json()
    pdu["content"] = content  # bypass build-time float validation
    refused(room, Event(pdu, rv))


@BOTH
def test_first_power_levels_allowed(rv: RoomVersion) -> None:
    room = Room(rv, ALICE)
    room.create()
    room.set_member(ALICE, ALICE, "join")
    allowed(room, room.make("m.room.power_levels", ALICE, {"users": {ALICE: 100, BOB: 100}}, ""))


@BOTH
def test_power_level_named_levels(rv: RoomVersion) -> None:
    room = pl_room(rv, events={"m.room.power_levels": 50}, kick=75)
    # bob (50) cannot raise a level above his own, nor change one that is above his own
    refused(room, pl_event(room, BOB, ban=60))
    refused(room, pl_event(room, BOB, kick=40))
    refused(room, pl_event(room, BOB, kick=None))
    allowed(room, pl_event(room, BOB, ban=40))
    allowed(room, pl_event(room, BOB, redact=50))
    allowed(room, pl_event(room, ALICE, kick=10))


@BOTH
@pytest.mark.parametrize("field", ["events", "notifications"])
def test_power_level_maps(rv: RoomVersion, field: str) -> None:
    room = pl_room(
        rv,
        events={"m.room.power_levels": 50, "m.room.tombstone": 100},
        notifications={"room": 100, "x": 10},
    )
    current = dict(room.state[("m.room.power_levels", "")].content[field])
    refused(room, pl_event(room, BOB, **{field: {**current, "new.type": 60}}))
    allowed(room, pl_event(room, BOB, **{field: {**current, "new.type": 50}}))
    key_above = "m.room.tombstone" if field == "events" else "room"
    refused(room, pl_event(room, BOB, **{field: {**current, key_above: 0}}))
    without = {k: v for k, v in current.items() if k != key_above}
    refused(room, pl_event(room, BOB, **{field: without}))
    lowered = {**current, ("m.room.power_levels" if field == "events" else "x"): 0}
    allowed(room, pl_event(room, BOB, **{field: lowered}))


@BOTH
def test_power_level_users(rv: RoomVersion) -> None:
    room = pl_room(rv, events={"m.room.power_levels": 50}, users={ALICE: 100, BOB: 50, MALLORY: 50})
    users = dict(room.state[("m.room.power_levels", "")].content["users"])
    # cannot give someone more than yourself
    refused(room, pl_event(room, BOB, users={**users, CAROL: 60}))
    allowed(room, pl_event(room, BOB, users={**users, CAROL: 50}))
    # cannot change or remove someone at or above your level
    refused(room, pl_event(room, BOB, users={**users, MALLORY: 10}))
    refused(room, pl_event(room, BOB, users={k: v for k, v in users.items() if k != MALLORY}))
    refused(room, pl_event(room, BOB, users={**users, ALICE: 0}))
    # can demote yourself
    allowed(room, pl_event(room, BOB, users={**users, BOB: 10}))
    # alice can demote bob
    allowed(room, pl_event(room, ALICE, users={**users, BOB: 0}))


@BOTH
def test_power_levels_need_event_level(rv: RoomVersion) -> None:
    room = pl_room(rv, events={"m.room.power_levels": 100})
    refused(room, pl_event(room, BOB, redact=10), "power level 100")


# --- redactions ---


@BOTH
def test_redaction_auth_only_uses_events_levels(rv: RoomVersion) -> None:
    room = pl_room(rv, redact=100)
    target = room.send("m.room.message", ALICE, {"body": "x"})
    # redact level is not part of auth: bob may send the redaction event
    redaction = room.make("m.room.redaction", BOB, {}, redacts=target.event_id)
    allowed(room, redaction)
    # but it is not applied: bob lacks the redact level... except same-server senders
    assert redaction_allowed(redaction, target, room.state)  # both on "test"
    foreign = room.make("m.room.redaction", "@eve:other", {}, redacts=target.event_id)
    assert not redaction_allowed(foreign, target, room.state)
    assert not redaction_allowed(redaction, None, room.state)
    admin = room.make("m.room.redaction", ALICE, {}, redacts=target.event_id)
    assert redaction_allowed(admin, None, room.state)
    # events override for m.room.redaction does apply
    room.send(
        "m.room.power_levels",
        ALICE,
        {"users": {ALICE: 100}, "events": {"m.room.redaction": 50}},
        "",
    )
    refused(room, room.make("m.room.redaction", BOB, {}, redacts=target.event_id))


@BOTH
def test_a_redaction_stored_before_its_event(rv: RoomVersion) -> None:
    room = pl_room(rv, redact=100)
    target = room.send("m.room.message", BOB, {"body": "x"})
    # Kept with the redaction: whether its sender had the redact level then.
    assert may_redact_others(ALICE, room.state) and not may_redact_others("@eve:other", room.state)
    assert earlier_redaction_applies(target, ALICE, True)
    assert earlier_redaction_applies(target, CAROL, False)  # same server as bob
    assert not earlier_redaction_applies(target, "@eve:other", False)
    assert earlier_redaction_applies(target, "@eve:other", True)
    create = room.state[("m.room.create", "")]
    assert not earlier_redaction_applies(create, ALICE, True)


@BOTH
def test_user_may_redact(rv: RoomVersion) -> None:
    room = pl_room(rv)
    assert user_may_redact(CAROL, CAROL, room.state)
    assert not user_may_redact(CAROL, ALICE, room.state)
    assert user_may_redact(BOB, CAROL, room.state)  # bob at 50 = default redact level
