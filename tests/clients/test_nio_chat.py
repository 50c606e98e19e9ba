"""Two matrix-nio clients chat through a real listener.

nio validates every response and event against JSON schemas; a schema
failure shows up as an `...Error` response, a `BadEvent`, or an
"Error validating" log line. Each of those is a Hamlet bug.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    BadEvent,
    InviteMemberEvent,
    JoinedMembersResponse,
    JoinedRoomsResponse,
    JoinResponse,
    LoginResponse,
    LogoutResponse,
    PresenceGetResponse,
    PresenceSetResponse,
    ProfileGetDisplayNameResponse,
    ProfileGetResponse,
    ProfileSetAvatarResponse,
    ProfileSetDisplayNameResponse,
    ReceiptEvent,
    RedactedEvent,
    RegisterResponse,
    RoomBanResponse,
    RoomContextResponse,
    RoomCreateResponse,
    RoomDeleteAliasResponse,
    RoomForgetResponse,
    RoomGetEventError,
    RoomGetEventResponse,
    RoomGetStateEventResponse,
    RoomGetStateResponse,
    RoomGetVisibilityResponse,
    RoomInviteResponse,
    RoomKickResponse,
    RoomLeaveResponse,
    RoomMemberEvent,
    RoomMessagesResponse,
    RoomMessageText,
    RoomPreset,
    RoomPutAliasResponse,
    RoomPutStateResponse,
    RoomReadMarkersResponse,
    RoomRedactResponse,
    RoomResolveAliasResponse,
    RoomSendResponse,
    RoomTypingResponse,
    RoomUnbanResponse,
    SyncResponse,
    TypingNoticeEvent,
    UnknownBadEvent,
    UpdateReceiptMarkerResponse,
    UploadFilterResponse,
)

from tests.support.harness import Harness, start_harness

GENEROUS = {"per_second": 1000, "burst_count": 1000}
CONFIG: dict[str, Any] = {
    "enable_registration": True,
    "enable_registration_without_verification": True,
    "rc_registration": GENEROUS,
    "rc_login": {"address": GENEROUS, "account": GENEROUS, "failed_attempts": GENEROUS},
    "rc_message": GENEROUS,
}


@pytest.fixture
async def h(make_hs_config) -> AsyncIterator[Harness]:  # type: ignore[no-untyped-def]
    harness = await start_harness([make_hs_config(**CONFIG)])
    yield harness
    await harness.close()


@pytest.fixture
def nio_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.WARNING, logger="nio")
    yield caplog
    problems = [
        r.getMessage()
        for r in caplog.get_records("call")
        if r.name.startswith("nio") and r.levelno >= logging.WARNING
    ]
    assert not problems, problems


@contextmanager
def expected_error(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """nio validates an error body against the success schema first and logs
    the mismatch; inside this block that one warning is expected."""
    before = len(caplog.records)
    yield
    del caplog.records[before:]


class Nio:
    """One nio client plus its sync position."""

    def __init__(self, harness: Harness, localpart: str) -> None:
        # No DNS for test.local: connect to the listener's address and name
        # the tenant in the Host header, as a reverse proxy would.
        base = f"http://127.0.0.1:{harness.client.server.port}"
        config = AsyncClientConfig(
            custom_headers={"Host": "test.local"},
            encryption_enabled=False,
            max_limit_exceeded=0,
            max_timeouts=0,
        )
        self.client = AsyncClient(base, localpart, config=config)
        self.localpart = localpart
        self.since: str | None = None

    async def sign_up(self) -> None:
        reg = await self.client.register(self.localpart, f"pw-{self.localpart}-123")
        assert isinstance(reg, RegisterResponse), reg
        self.client.access_token = ""
        login = await self.client.login(f"pw-{self.localpart}-123", device_name="nio")
        assert isinstance(login, LoginResponse), login
        assert login.user_id == f"@{self.localpart}:test.local"

    async def sync(self, wait_ms: int = 0) -> SyncResponse:
        resp = await self.client.sync(timeout=wait_ms, since=self.since)
        assert isinstance(resp, SyncResponse), resp
        self.since = resp.next_batch
        for room in [*resp.rooms.join.values(), *resp.rooms.leave.values()]:
            for ev in [*room.timeline.events, *room.state]:
                assert not isinstance(ev, BadEvent | UnknownBadEvent), ev.source
        for inv in resp.rooms.invite.values():
            for iev in inv.invite_state:
                assert not isinstance(iev, BadEvent | UnknownBadEvent), iev
        return resp

    async def sync_until(self, predicate: Any, rounds: int = 5) -> SyncResponse:
        for _ in range(rounds):
            resp = await self.sync(wait_ms=2000)
            if predicate(resp):
                return resp
        raise AssertionError(f"{self.localpart}: condition not met after {rounds} syncs")


def _texts(resp: SyncResponse, room_id: str) -> list[tuple[str, str]]:
    room = resp.rooms.join.get(room_id)
    if room is None:
        return []
    return [(ev.sender, ev.body) for ev in room.timeline.events if isinstance(ev, RoomMessageText)]


def _ephemeral(resp: SyncResponse, room_id: str, kind: type) -> list[Any]:
    room = resp.rooms.join.get(room_id)
    if room is None:
        return []
    return [ev for ev in room.ephemeral if isinstance(ev, kind)]


async def _paginate_all(client: AsyncClient, initial: SyncResponse, room_id: str) -> list[str]:
    """A limited sync's timeline, extended back to the room's start with /messages."""
    timeline = initial.rooms.join[room_id].timeline
    assert timeline.limited
    seen = [ev.event_id for ev in timeline.events]
    token = timeline.prev_batch
    for _ in range(20):
        back = await client.room_messages(room_id, start=token, limit=4)
        assert isinstance(back, RoomMessagesResponse), back
        seen[:0] = [ev.event_id for ev in reversed(back.chunk)]
        if not back.end or not back.chunk:
            break
        token = back.end
    return seen


async def test_nio_two_user_chat(h: Harness, nio_log: pytest.LogCaptureFixture) -> None:
    alice, bob = Nio(h, "alice"), Nio(h, "bob")
    try:
        await alice.sign_up()
        await bob.sign_up()
        await alice.sync()
        await bob.sync()

        created = await alice.client.room_create(name="Chat", invite=["@bob:test.local"])
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id

        # Bob sees the invite, with the stripped state nio needs.
        resp = await bob.sync_until(lambda r: room_id in r.rooms.invite)
        invite_state = resp.rooms.invite[room_id].invite_state
        assert any(
            isinstance(ev, InviteMemberEvent)
            and ev.state_key == "@bob:test.local"
            and ev.membership == "invite"
            for ev in invite_state
        ), invite_state
        assert room_id in bob.client.invited_rooms
        assert bob.client.invited_rooms[room_id].name == "Chat"

        joined = await bob.client.join(room_id)
        assert isinstance(joined, JoinResponse), joined
        assert joined.room_id == room_id
        resp = await bob.sync_until(lambda r: room_id in r.rooms.join)
        assert room_id in bob.client.rooms
        assert "@alice:test.local" in bob.client.rooms[room_id].users

        # Alice's sync shows the room and Bob's join.
        resp = await alice.sync_until(
            lambda r: any(
                isinstance(ev, RoomMemberEvent)
                and ev.state_key == "@bob:test.local"
                and ev.membership == "join"
                for ev in (r.rooms.join[room_id].timeline.events if room_id in r.rooms.join else [])
            )
        )

        # Both send; each sees the other's message.
        sent = await alice.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "hello bob"}
        )
        assert isinstance(sent, RoomSendResponse), sent
        resp = await bob.sync_until(lambda r: _texts(r, room_id))
        assert _texts(resp, room_id) == [("@alice:test.local", "hello bob")]
        alice_event = sent.event_id

        sent = await bob.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "hi alice"}
        )
        assert isinstance(sent, RoomSendResponse), sent
        resp = await alice.sync_until(lambda r: _texts(r, room_id))
        assert ("@bob:test.local", "hi alice") in _texts(resp, room_id)
        bob_event = sent.event_id

        # Typing reaches the other side as an ephemeral event nio parses.
        typing = await alice.client.room_typing(room_id, True, timeout=30000)
        assert isinstance(typing, RoomTypingResponse), typing
        resp = await bob.sync_until(lambda r: _ephemeral(r, room_id, TypingNoticeEvent))
        notice = _ephemeral(resp, room_id, TypingNoticeEvent)[-1]
        assert notice.users == ["@alice:test.local"]
        assert bob.client.rooms[room_id].typing_users == ["@alice:test.local"]

        # Read markers: Bob's receipt reaches Alice.
        markers = await bob.client.room_read_markers(room_id, alice_event, alice_event)
        assert isinstance(markers, RoomReadMarkersResponse), markers
        resp = await alice.sync_until(lambda r: _ephemeral(r, room_id, ReceiptEvent))
        receipts = [
            (r.event_id, r.receipt_type, r.user_id)
            for ev in _ephemeral(resp, room_id, ReceiptEvent)
            for r in ev.receipts
        ]
        assert (alice_event, "m.read", "@bob:test.local") in receipts
        assert alice.client.rooms[room_id].read_receipts["@bob:test.local"].event_id == alice_event

        # History, newest first, then the page before it.
        page = await alice.client.room_messages(room_id, start=alice.since or "", limit=2)
        assert isinstance(page, RoomMessagesResponse), page
        assert [ev.event_id for ev in page.chunk] == [bob_event, alice_event]
        assert page.end
        older = await alice.client.room_messages(room_id, start=page.end, limit=50)
        assert isinstance(older, RoomMessagesResponse), older
        types = [ev.source["type"] for ev in older.chunk]
        assert types[-1] == "m.room.create"
        assert all(not isinstance(ev, BadEvent | UnknownBadEvent) for ev in older.chunk)
        history = [ev.event_id for ev in reversed([*page.chunk, *older.chunk])]

        # A limited initial sync, then back-pagination from its prev_batch:
        # no gaps, no duplicates.
        phone = Nio(h, "bob")
        login = await phone.client.login("pw-bob-123", device_name="phone")
        assert isinstance(login, LoginResponse), login
        try:
            fresh = await phone.client.sync(
                timeout=0, sync_filter={"room": {"timeline": {"limit": 3}}}
            )
            assert isinstance(fresh, SyncResponse), fresh
            seen = await _paginate_all(phone.client, fresh, room_id)
        finally:
            await phone.client.close()
        assert seen == history, (seen, history)

        members = await bob.client.joined_members(room_id)
        assert isinstance(members, JoinedMembersResponse), members
        assert sorted(m.user_id for m in members.members) == [
            "@alice:test.local",
            "@bob:test.local",
        ]

        state = await bob.client.room_get_state(room_id)
        assert isinstance(state, RoomGetStateResponse), state
        assert {ev["type"] for ev in state.events} >= {
            "m.room.create",
            "m.room.member",
            "m.room.power_levels",
            "m.room.name",
        }

        name_set = await bob.client.set_displayname("Bobby")
        assert isinstance(name_set, ProfileSetDisplayNameResponse), name_set
        name = await alice.client.get_displayname("@bob:test.local")
        assert isinstance(name, ProfileGetDisplayNameResponse), name
        assert name.displayname == "Bobby"
        resp = await alice.sync_until(
            lambda r: (
                bob.client.user_id in alice.client.rooms[room_id].users
                and alice.client.rooms[room_id].users["@bob:test.local"].display_name == "Bobby"
            )
        )

        for c in (alice, bob):
            out = await c.client.logout()
            assert isinstance(out, LogoutResponse), out
    finally:
        await alice.client.close()
        await bob.client.close()


async def test_nio_room_lifecycle(h: Harness, nio_log: pytest.LogCaptureFixture) -> None:
    """State, redaction, context, moderation, aliases, presence and filtered syncs."""
    alice, bob = Nio(h, "alice"), Nio(h, "bob")
    try:
        await alice.sign_up()
        await bob.sign_up()
        created = await alice.client.room_create(
            name="Ops", topic="first", preset=RoomPreset.public_chat, alias="ops"
        )
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id

        resolved = await bob.client.room_resolve_alias("#ops:test.local")
        assert isinstance(resolved, RoomResolveAliasResponse), resolved
        assert resolved.room_id == room_id
        put_alias = await alice.client.room_put_alias("#ops2:test.local", room_id)
        assert isinstance(put_alias, RoomPutAliasResponse), put_alias
        del_alias = await alice.client.room_delete_alias("#ops2:test.local")
        assert isinstance(del_alias, RoomDeleteAliasResponse), del_alias
        visibility = await alice.client.room_get_visibility(room_id)
        assert isinstance(visibility, RoomGetVisibilityResponse), visibility

        joined = await bob.client.join("#ops:test.local")
        assert isinstance(joined, JoinResponse), joined
        rooms = await bob.client.joined_rooms()
        assert isinstance(rooms, JoinedRoomsResponse), rooms
        assert rooms.rooms == [room_id]

        topic = await alice.client.update_room_topic(room_id, "second")
        assert isinstance(topic, RoomPutStateResponse), topic
        got = await bob.client.room_get_state_event(room_id, "m.room.topic")
        assert isinstance(got, RoomGetStateEventResponse), got
        assert got.content == {"topic": "second"}

        sent = await bob.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "oops"}
        )
        assert isinstance(sent, RoomSendResponse), sent
        after = await alice.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "after"}
        )
        assert isinstance(after, RoomSendResponse), after
        # nio retries a send with the same transaction ID: same event.
        again = await bob.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "oops"}, tx_id="retry-1"
        )
        retried = await bob.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "oops"}, tx_id="retry-1"
        )
        assert isinstance(again, RoomSendResponse) and isinstance(retried, RoomSendResponse)
        assert again.event_id == retried.event_id
        with expected_error(nio_log):
            missing = await alice.client.room_get_event(room_id, "$nope")
        assert isinstance(missing, RoomGetEventError), missing
        assert missing.status_code == "M_NOT_FOUND"

        redacted = await bob.client.room_redact(room_id, sent.event_id, reason="typo")
        assert isinstance(redacted, RoomRedactResponse), redacted
        event = await alice.client.room_get_event(room_id, sent.event_id)
        assert isinstance(event, RoomGetEventResponse), event
        assert isinstance(event.event, RedactedEvent), event.event
        context = await alice.client.room_context(room_id, after.event_id, limit=4)
        assert isinstance(context, RoomContextResponse), context
        assert context.event is not None and context.event.event_id == after.event_id
        assert any(ev.event_id == sent.event_id for ev in context.events_before)

        receipt = await alice.client.update_receipt_marker(room_id, after.event_id)
        assert isinstance(receipt, UpdateReceiptMarkerResponse), receipt

        presence = await alice.client.set_presence("online", "busy")
        assert isinstance(presence, PresenceSetResponse), presence
        seen = await bob.client.get_presence("@alice:test.local")
        assert isinstance(seen, PresenceGetResponse), seen
        assert seen.presence == "online"

        avatar = await bob.client.set_avatar("mxc://test.local/abc")
        assert isinstance(avatar, ProfileSetAvatarResponse), avatar
        profile = await alice.client.get_profile("@bob:test.local")
        assert isinstance(profile, ProfileGetResponse), profile
        assert profile.avatar_url == "mxc://test.local/abc"

        # A stored filter and a full-state sync with it.
        filt = await alice.client.upload_filter(room={"timeline": {"limit": 2}})
        assert isinstance(filt, UploadFilterResponse), filt
        resp = await alice.client.sync(timeout=0, sync_filter=filt.filter_id, full_state=True)
        assert isinstance(resp, SyncResponse), resp
        room = resp.rooms.join[room_id]
        assert len(room.timeline.events) <= 2
        assert room.timeline.limited
        assert alice.client.rooms[room_id].topic == "second"
        assert alice.client.rooms[room_id].name == "Ops"

        # Moderation: kick, re-invite, ban, unban. Bob sees himself leave.
        bob.since = None
        await bob.sync()
        kicked = await alice.client.room_kick(room_id, "@bob:test.local", reason="bye")
        assert isinstance(kicked, RoomKickResponse), kicked
        resp = await bob.sync_until(lambda r: room_id in r.rooms.leave)
        invited = await alice.client.room_invite(room_id, "@bob:test.local")
        assert isinstance(invited, RoomInviteResponse), invited
        resp = await bob.sync_until(lambda r: room_id in r.rooms.invite)
        banned = await alice.client.room_ban(room_id, "@bob:test.local", reason="really")
        assert isinstance(banned, RoomBanResponse), banned
        resp = await bob.sync_until(lambda r: room_id in r.rooms.leave)
        unbanned = await alice.client.room_unban(room_id, "@bob:test.local")
        assert isinstance(unbanned, RoomUnbanResponse), unbanned
        forgot = await bob.client.room_forget(room_id)
        assert isinstance(forgot, RoomForgetResponse), forgot

        left = await alice.client.room_leave(room_id)
        assert isinstance(left, RoomLeaveResponse), left
        resp = await alice.sync_until(lambda r: room_id in r.rooms.leave)
    finally:
        await alice.client.close()
        await bob.client.close()
