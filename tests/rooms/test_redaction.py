"""PUT /rooms/{roomId}/redact/{eventId}/{txnId} end to end."""

from __future__ import annotations

from tests.rooms.helpers import (
    V3,
    assert_error,
    count_events,
    create_room,
    get_event,
    get_state_event,
    join,
    put_state,
    q,
    redact,
    send_ok,
    state_map,
)
from tests.support.harness import Harness
from tests.support.users import make_user


async def test_redact_own_event(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    event_id = await send_ok(harness, alice, room_id, "oops")
    resp = await redact(harness, alice, room_id, event_id, "r1", {"reason": "typo"})
    assert resp.status == 200, resp.json
    redaction_id = resp.json["event_id"]
    resp = await get_event(harness, alice, room_id, event_id)
    assert resp.status == 200
    assert resp.json["content"] == {}
    because = resp.json["unsigned"]["redacted_because"]
    assert because["event_id"] == redaction_id
    assert because["type"] == "m.room.redaction"
    assert because["content"]["reason"] == "typo"
    resp = await get_event(harness, alice, room_id, redaction_id)
    assert resp.status == 200
    assert resp.json["type"] == "m.room.redaction"
    assert resp.json["redacts"] == event_id
    assert resp.json["unsigned"]["transaction_id"] == "r1"


async def test_redact_v11_puts_redacts_in_content(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice, room_version="11")
    event_id = await send_ok(harness, alice, room_id)
    resp = await redact(harness, alice, room_id, event_id, "r")
    assert resp.status == 200, resp.json
    resp = await get_event(harness, alice, room_id, resp.json["event_id"])
    assert resp.json["content"]["redacts"] == event_id
    resp = await get_event(harness, alice, room_id, event_id)
    assert resp.json["content"] == {}


async def test_redact_power(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room_id)).status == 200
    alices = await send_ok(harness, alice, room_id)
    bobs = await send_ok(harness, bob, room_id)
    before = await count_events(harness, room_id)
    # bob (PL 0 < redact 50) cannot redact alice's event.
    resp = await redact(harness, bob, room_id, alices, "r")
    assert_error(resp, 403, "M_FORBIDDEN")
    assert await count_events(harness, room_id) == before
    resp = await get_event(harness, bob, room_id, alices)
    assert resp.json["content"]["body"] == "hi"
    # alice can redact bob's.
    resp = await redact(harness, alice, room_id, bobs, "r")
    assert resp.status == 200, resp.json
    resp = await get_event(harness, bob, room_id, bobs)
    assert resp.json["content"] == {}
    # bob can redact his own (already redacted again is fine too).
    bobs2 = await send_ok(harness, bob, room_id)
    resp = await redact(harness, bob, room_id, bobs2, "r2")
    assert resp.status == 200, resp.json


async def test_redaction_idempotent_by_txn(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    event_id = await send_ok(harness, alice, room_id)
    first = await redact(harness, alice, room_id, event_id, "same")
    assert first.status == 200
    before = await count_events(harness, room_id)
    again = await redact(harness, alice, room_id, event_id, "same")
    assert again.status == 200 and again.json == first.json
    assert await count_events(harness, room_id) == before


async def test_redact_errors(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat")
    other = await create_room(harness, alice)
    event_id = await send_ok(harness, alice, room_id)
    assert_error(await redact(harness, alice, room_id, "$nope", "a"), 404, "M_NOT_FOUND")
    # The event exists but in another room.
    assert_error(await redact(harness, alice, other, event_id, "b"), 404, "M_NOT_FOUND")
    # Not a member.
    assert_error(await redact(harness, bob, room_id, event_id, "c"), 403, "M_FORBIDDEN")
    assert_error(
        await redact(harness, alice, f"!nope:{harness.hs.server_name}", event_id, "d"), 404
    )
    resp = await redact(harness, alice, room_id, event_id, "e", {"reason": 5})
    assert_error(resp, 400, "M_BAD_JSON")
    # An empty body is allowed.
    resp = await harness.request(
        "PUT", f"{V3}/rooms/{q(room_id)}/redact/{q(event_id)}/f", token=alice.token
    )
    assert resp.status == 200, resp.json


async def test_redacted_state_event_served_redacted(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice, name="Secret name")
    state = await state_map(harness, alice, room_id)
    name_id = state[("m.room.name", "")]["event_id"]
    resp = await redact(harness, alice, room_id, name_id, "r")
    assert resp.status == 200, resp.json
    resp = await get_state_event(harness, alice, room_id, "m.room.name")
    assert resp.status == 200 and resp.json == {}
    state = await state_map(harness, alice, room_id)
    assert state[("m.room.name", "")]["content"] == {}
    # A later change does not serve the redacted content as prev_content.
    resp = await put_state(harness, alice, room_id, "m.room.name", {"name": "New"})
    new_id = resp.json["event_id"]
    resp = await get_event(harness, alice, room_id, new_id)
    assert (
        "prev_content" not in resp.json["unsigned"] or resp.json["unsigned"]["prev_content"] == {}
    )


async def test_redacted_power_levels_apply_redacted(harness: Harness) -> None:
    """Once redacted, an event counts as its redacted form, for auth too.

    v10 redaction drops `invite` from m.room.power_levels, so the spec
    default (0) applies again.
    """
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    carol = await make_user(harness, "carol")
    room_id = await create_room(harness, alice, preset="public_chat", room_version="10")
    assert (await join(harness, bob, room_id)).status == 200
    resp = await put_state(
        harness,
        alice,
        room_id,
        "m.room.power_levels",
        {
            "users": {alice.user_id: 100},
            "invite": 100,
            "redact": 50,
        },
    )
    assert resp.status == 200
    pl_id = resp.json["event_id"]
    invite = {"user_id": carol.user_id}
    resp = await harness.request(
        "POST", f"{V3}/rooms/{q(room_id)}/invite", json=invite, token=bob.token
    )
    assert_error(resp, 403)
    assert (await redact(harness, alice, room_id, pl_id, "r")).status == 200
    resp = await get_state_event(harness, alice, room_id, "m.room.power_levels")
    assert "invite" not in resp.json
    resp = await harness.request(
        "POST", f"{V3}/rooms/{q(room_id)}/invite", json=invite, token=bob.token
    )
    assert resp.status == 200, resp.json


async def test_v11_redaction_through_send_is_checked(harness: Harness) -> None:
    """In v11 `redacts` is in the content: /send and PUT /state must not bypass the checks."""
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat", room_version="11")
    assert (await join(harness, bob, room_id)).status == 200
    alices = await send_ok(harness, alice, room_id, "keep me")
    before = await count_events(harness, room_id)
    resp = await harness.request(
        "PUT",
        f"{V3}/rooms/{q(room_id)}/send/m.room.redaction/x",
        json={"redacts": alices},
        token=bob.token,
    )
    assert_error(resp, 403, "M_FORBIDDEN")
    resp = await put_state(harness, bob, room_id, "m.room.redaction", {"redacts": alices})
    assert_error(resp, 403)
    assert await count_events(harness, room_id) == before
    resp = await get_event(harness, alice, room_id, alices)
    assert resp.json["content"]["body"] == "keep me"
    # Through /send, a redaction of an event of another room is refused too.
    other = await create_room(harness, bob, room_version="11")
    bobs_other = await send_ok(harness, bob, other)
    resp = await harness.request(
        "PUT",
        f"{V3}/rooms/{q(room_id)}/send/m.room.redaction/y",
        json={"redacts": bobs_other},
        token=bob.token,
    )
    assert_error(resp, 404)
    # bob's own event: allowed through /send as well.
    bobs = await send_ok(harness, bob, room_id, "mine")
    resp = await harness.request(
        "PUT",
        f"{V3}/rooms/{q(room_id)}/send/m.room.redaction/z",
        json={"redacts": bobs},
        token=bob.token,
    )
    assert resp.status == 200, resp.json
    assert (await get_event(harness, bob, room_id, bobs)).json["content"] == {}


async def test_create_event_cannot_be_redacted(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    state = await state_map(harness, alice, room_id)
    create_id = state[("m.room.create", "")]["event_id"]
    assert_error(await redact(harness, alice, room_id, create_id, "r"), 403)
    state = await state_map(harness, alice, room_id)
    assert state[("m.room.create", "")]["content"]["room_version"] == "10"
