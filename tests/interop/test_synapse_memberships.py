"""Invites, rejections, leaves, kicks and bans between Hamlet and a real
Synapse 1.163.2, in both directions, each side driven through its own
client API (Synapse's auto-accept of invites is off: its user accepts by
joining)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.interop.synapse import Synapse
from tests.interop.test_synapse_transport import HamletServer, hamlet, hamlet_tls

__all__ = ["hamlet", "hamlet_tls"]

V3 = "/_matrix/client/v3"
PASSWORD = "interop-pw-1"


@dataclass
class Client:
    """One user's client API calls on one server: `(status, body)`."""

    call: Callable[[str, str, Any], Awaitable[tuple[int, Any]]]
    user_id: str

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = await self.call(method, path, body)
        assert status == 200, (method, path, status, answer)
        return answer

    async def membership(self, room_id: str, user_id: str) -> str | None:
        status, body = await self.call(
            "GET", f"{V3}/rooms/{quote(room_id)}/state/m.room.member/{quote(user_id)}", None
        )
        return str(body["membership"]) if status == 200 else None

    async def sync_rooms(self) -> dict[str, Any]:
        body = await self.ok("GET", f"{V3}/sync?timeout=0", None)
        rooms: dict[str, Any] = body.get("rooms", {})
        return rooms


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Real servers on real time: poll, within a bounded deadline."""
    for _ in range(150):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the other server never caught up")


@pytest.fixture
async def clients(
    hamlet: HamletServer, synapse: Synapse
) -> AsyncIterator[tuple[Client, Client, Client]]:
    """A Hamlet user, a Synapse user and a second Synapse user (to see the
    room from Synapse after its first user is kicked), names unique to this run."""
    suffix = secrets.token_hex(4)
    hs = hamlet.hs
    hs.federation_sender.attach_transport(hs.federation_client)
    base = f"https://{hamlet.server_name}"
    async with aiohttp.ClientSession() as session:
        local = await hs.registration.register_user(f"hal{suffix}", PASSWORD)
        async with session.post(
            base + f"{V3}/login",
            json={"type": "m.login.password", "user": local, "password": PASSWORD},
            ssl=False,
        ) as resp:
            assert resp.status == 200
            hamlet_token = (await resp.json())["access_token"]

        async def on_hamlet(method: str, path: str, body: Any) -> tuple[int, Any]:
            headers = {"Authorization": f"Bearer {hamlet_token}"}
            async with session.request(
                method, base + path, json=body, headers=headers, ssl=False
            ) as resp:
                return resp.status, await resp.json()

        async def synapse_user(name: str) -> Client:
            status, reg = await asyncio.to_thread(
                synapse.client,
                "POST",
                f"{V3}/register",
                {"username": name, "password": PASSWORD, "auth": {"type": "m.login.dummy"}},
            )
            assert status == 200, reg
            token = reg["access_token"]

            async def on_synapse(method: str, path: str, body: Any) -> tuple[int, Any]:
                return await asyncio.to_thread(synapse.client, method, path, body, token)

            return Client(on_synapse, reg["user_id"])

        yield (
            Client(on_hamlet, local),
            await synapse_user(f"sy{suffix}"),
            await synapse_user(f"sam{suffix}"),
        )


async def test_synapse_invites_a_hamlet_user(
    clients: tuple[Client, Client, Client], hamlet: HamletServer
) -> None:
    hal, sy, _ = clients
    made = await sy.ok(
        "POST", f"{V3}/createRoom", {"preset": "private_chat", "name": "Syn", "room_version": "10"}
    )
    room = made["room_id"]
    r = quote(room)

    async def invited() -> bool:
        return room in (await hal.sync_rooms()).get("invite", {})

    async def their(membership: str) -> bool:
        return await sy.membership(room, hal.user_id) == membership

    async def ours(membership: str) -> bool:
        return await hamlet_membership(hamlet, room, hal.user_id) == membership

    # Invited, then joins through Synapse.
    await sy.ok("POST", f"{V3}/rooms/{r}/invite", {"user_id": hal.user_id})
    await eventually(invited)
    state = (await hal.sync_rooms())["invite"][room]["invite_state"]["events"]
    assert {"m.room.create", "m.room.name"} <= {e["type"] for e in state}
    await hal.ok("POST", f"{V3}/join/{r}", {})
    await eventually(lambda: their("join"))
    # Kicked by Synapse's admin: our side applies it.
    await sy.ok("POST", f"{V3}/rooms/{r}/kick", {"user_id": hal.user_id})
    await eventually(lambda: ours("leave"))
    # Invited again and rejects: make_leave / send_leave against Synapse.
    await sy.ok("POST", f"{V3}/rooms/{r}/invite", {"user_id": hal.user_id})
    await eventually(invited)
    await hal.ok("POST", f"{V3}/rooms/{r}/leave", {})
    await eventually(lambda: their("leave"))
    assert room not in (await hal.sync_rooms()).get("invite", {})
    # Invited, joins, leaves on their own: Synapse gets our leave.
    await sy.ok("POST", f"{V3}/rooms/{r}/invite", {"user_id": hal.user_id})
    await eventually(invited)
    await hal.ok("POST", f"{V3}/join/{r}", {})
    await eventually(lambda: their("join"))
    await hal.ok("POST", f"{V3}/rooms/{r}/leave", {})
    await eventually(lambda: their("leave"))
    # Banned while joined: our side applies it.
    await sy.ok("POST", f"{V3}/rooms/{r}/invite", {"user_id": hal.user_id})
    await eventually(invited)
    await hal.ok("POST", f"{V3}/join/{r}", {})
    await eventually(lambda: their("join"))
    await sy.ok("POST", f"{V3}/rooms/{r}/ban", {"user_id": hal.user_id})
    await eventually(lambda: ours("ban"))


async def test_a_hamlet_user_invites_synapse_users(
    clients: tuple[Client, Client, Client], hamlet: HamletServer
) -> None:
    hal, sy, sam = clients
    made = await hal.ok("POST", f"{V3}/createRoom", {"preset": "private_chat", "name": "Ham"})
    room = made["room_id"]
    r = quote(room)

    async def invited(client: Client) -> bool:
        return room in (await client.sync_rooms()).get("invite", {})

    async def ours(user: Client, membership: str) -> bool:
        return await hal.membership(room, user.user_id) == membership

    async def sam_sees(user: Client, membership: str) -> bool:
        return await sam.membership(room, user.user_id) == membership

    # sam is invited and joins through Synapse's client API (make_join / send_join on us).
    await hal.ok("POST", f"{V3}/rooms/{r}/invite", {"user_id": sam.user_id})
    await eventually(lambda: invited(sam))
    state = (await sam.sync_rooms())["invite"][room]["invite_state"]["events"]
    assert "m.room.create" in {e["type"] for e in state}
    await sam.ok("POST", f"{V3}/join/{r}", {})
    await eventually(lambda: ours(sam, "join"))
    # sy rejects an invite: make_leave / send_leave against us.
    await hal.ok("POST", f"{V3}/rooms/{r}/invite", {"user_id": sy.user_id})
    await eventually(lambda: invited(sy))
    await sy.ok("POST", f"{V3}/rooms/{r}/leave", {})
    await eventually(lambda: ours(sy, "leave"))
    # Invited again, sy joins, then is kicked, then banned: Synapse applies both.
    await hal.ok("POST", f"{V3}/rooms/{r}/invite", {"user_id": sy.user_id})
    # Synapse is in the room (sam): the invite reaches it through /invite and
    # then /send; joining before the latter lands trips Synapse up (it makes
    # the join with both the old and the out-of-band member event).
    await eventually(lambda: sam_sees(sy, "invite"))
    await sy.ok("POST", f"{V3}/join/{r}", {})
    await eventually(lambda: ours(sy, "join"))
    await hal.ok("POST", f"{V3}/rooms/{r}/kick", {"user_id": sy.user_id})
    await eventually(lambda: sam_sees(sy, "leave"))
    await hal.ok("POST", f"{V3}/rooms/{r}/ban", {"user_id": sy.user_id})
    await eventually(lambda: sam_sees(sy, "ban"))
    status, _ = await sy.call("POST", f"{V3}/join/{r}", {})
    assert status == 403
    # sam leaves on their own: the leave reaches us.
    await sam.ok("POST", f"{V3}/rooms/{r}/leave", {})
    await eventually(lambda: ours(sam, "leave"))


async def hamlet_membership(hamlet: HamletServer, room_id: str, user_id: str) -> str | None:
    found = await hamlet.hs.rooms_store.get_membership(room_id, user_id)
    return found.membership if found is not None else None
