"""Synapse 1.163.2's users in Hamlet's rooms: joins by alias and by room ID
with `via` (Hamlet the resident server), messages both ways in one order,
state from either side, refused state changes on both, and typing, read
receipts and presence both ways."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest

from hamlet.api.request import ApiRequest
from hamlet.api.router import Handler, Router
from hamlet.api.routes import build_router
from tests.interop.synapse import Synapse
from tests.interop.test_synapse_transport import (
    HamletServer,
    MakeConfig,
    eventually,
    hamlet_tls,
    running_hamlet,
)
from tests.support.federation import Gate
from tests.support.tls import SelfSigned

V3 = "/_matrix/client/v3"
SEND = "/_matrix/federation/v1/send/{txnId}"
__all__ = ["hamlet_tls"]
MESSAGE = "m.room.message"
#: Limits of clients and servers are tested elsewhere; here they would only slow the test.
UNLIMITED = {"per_second": 1000, "burst_count": 1000}


def on_synapse(
    synapse: Synapse, method: str, path: str, body: Any = None, token: str | None = None
) -> Awaitable[tuple[int, Any]]:
    return asyncio.to_thread(synapse.client, method, path, body, token)


async def on_hamlet(
    hamlet: HamletServer, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    """A call to Hamlet's client API over HTTPS, as a client would make it."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            f"https://{hamlet.server_name}{path}",
            data=orjson.dumps(body) if body is not None else None,
            headers=headers,
            ssl=False,
        ) as resp,
    ):
        return resp.status, orjson.loads(await resp.read() or b"null")


@dataclass
class Seen:
    """What a /sync showed of one user's typing, read receipt and presence."""

    user_id: str
    typing: bool = False
    receipt: bool = False
    status_msg: str | None = None

    def read(self, body: Any, room_id: str, event_id: str) -> None:
        room = body.get("rooms", {}).get("join", {}).get(room_id, {})
        for e in room.get("ephemeral", {}).get("events", []):
            if e["type"] == "m.typing" and self.user_id in e["content"]["user_ids"]:
                self.typing = True
            readers = e["content"].get(event_id, {}).get("m.read", {})
            if e["type"] == "m.receipt" and self.user_id in readers:
                self.receipt = True
        for e in body.get("presence", {}).get("events", []):
            if e["sender"] == self.user_id:
                self.status_msg = e["content"].get("status_msg")


@dataclass
class User:
    user_id: str
    token: str


@dataclass
class Scene:
    hamlet: HamletServer
    synapse: Synapse
    gate: Gate
    #: Holds Synapse's transactions to Hamlet while clear.
    inbound: asyncio.Event
    alice: User  # Hamlet's
    sybil: User  # Synapse's
    suffix: str

    async def on(self, side: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        if side == "hamlet":
            return await on_hamlet(self.hamlet, method, V3 + path, body, self.alice.token)
        return await on_synapse(self.synapse, method, V3 + path, body, self.sybil.token)

    async def ok(self, side: str, method: str, path: str, body: Any = None) -> Any:
        status, answer = await self.on(side, method, path, body)
        assert status == 200, (side, path, answer)
        return answer

    async def bodies(self, side: str, room_id: str) -> list[str]:
        page = await self.ok(side, "GET", f"/rooms/{quote(room_id)}/messages?dir=b&limit=100")
        return [e["content"].get("body") for e in reversed(page["chunk"]) if e["type"] == MESSAGE]

    async def state(self, side: str, room_id: str, event_type: str) -> Any:
        status, content = await self.on(side, "GET", f"/rooms/{quote(room_id)}/state/{event_type}")
        return content if status == 200 else None

    async def sees_state(self, side: str, room_id: str, event_type: str, content: Any) -> bool:
        async def check() -> bool:
            return await self.state(side, room_id, event_type) == content

        return await eventually(check, bool)

    async def sync_since(self, side: str, since: str) -> Any:
        return await self.ok(side, "GET", f"/sync?timeout=0&since={since}")


def _router_holding_transactions(inbound: asyncio.Event) -> Router:
    """Hamlet's routes, with /send waiting for `inbound` to be set."""
    router = Router()
    for route in build_router().routes():
        handler = route.handler
        if route.pattern == SEND:

            async def held(req: ApiRequest, handler: Handler = handler) -> Any:
                await inbound.wait()
                return await handler(req)

            handler = held
        router.add(route.method, route.pattern, handler, capped=route.capped)
    return router


@pytest.fixture
async def scene(
    make_hs_config: MakeConfig, hamlet_tls: SelfSigned, synapse: Synapse
) -> AsyncIterator[Scene]:
    inbound = asyncio.Event()
    inbound.set()
    async with running_hamlet(
        make_hs_config,
        hamlet_tls,
        lambda _server: _router_holding_transactions(inbound),
        presence={"enabled": True},
        rc_message=UNLIMITED,
        rc_presence={"per_user": UNLIMITED},
        rc_federation={"sleep_limit": 1000, "reject_limit": 1000},
    ) as hamlet:
        yield await _scene(hamlet, synapse, inbound)


async def _scene(hamlet: HamletServer, synapse: Synapse, inbound: asyncio.Event) -> Scene:
    hs = hamlet.hs
    gate = Gate(hs.federation_client)
    hs.federation_sender.attach_transport(gate)
    alice_id = await hs.registration.register_user("alice")
    login = await hs.registration.create_login(alice_id, None, None)
    suffix = secrets.token_hex(4)  # one Synapse serves the session
    status, reg = await on_synapse(
        synapse,
        "POST",
        f"{V3}/register",
        {
            "username": f"sybil{suffix}",
            "password": "pw-1-interop",
            "auth": {"type": "m.login.dummy"},
        },
    )
    assert status == 200, reg
    return Scene(
        hamlet,
        synapse,
        gate,
        inbound,
        User(alice_id, login["access_token"]),
        User(reg["user_id"], reg["access_token"]),
        suffix,
    )


async def _hamlet_room(scene: Scene, join_by: str) -> str:
    """A public room of Hamlet's that Synapse's user joins, by alias or room ID with via."""
    made = await scene.ok(
        "hamlet",
        "POST",
        "/createRoom",
        {"preset": "public_chat", "room_alias_name": f"hall{scene.suffix}{join_by}"},
    )
    room_id: str = made["room_id"]
    hamlet_name = scene.hamlet.server_name
    if join_by == "alias":
        target = quote(f"#hall{scene.suffix}{join_by}:{hamlet_name}")
    else:
        target = f"{quote(room_id)}?via={quote(hamlet_name)}"
    joined = await scene.ok("synapse", "POST", f"/join/{target}", {})
    assert joined["room_id"] == room_id
    for side in ("hamlet", "synapse"):
        members = await scene.ok(side, "GET", f"/rooms/{quote(room_id)}/joined_members")
        assert set(members["joined"]) == {scene.alice.user_id, scene.sybil.user_id}, side
    return room_id


@pytest.mark.parametrize("join_by", ["alias", "via"])
async def test_synapse_joins_a_hamlet_room_and_messages_keep_one_order(
    scene: Scene, join_by: str
) -> None:
    room_id = await _hamlet_room(scene, join_by)
    expected: list[str] = []
    for i in range(10):
        for side, other in (("synapse", "hamlet"), ("hamlet", "synapse")):
            text = f"{side} {i}"
            await scene.ok(
                side, "PUT", f"/rooms/{quote(room_id)}/send/{MESSAGE}/{join_by}{i}",
                {"msgtype": "m.text", "body": text},
            )  # fmt: skip
            expected.append(text)

            async def arrived(other: str = other) -> bool:
                return (await scene.bodies(other, room_id))[-1:] == [expected[-1]]

            assert await eventually(arrived, bool), (other, text)
    assert await scene.bodies("hamlet", room_id) == expected
    assert await scene.bodies("synapse", room_id) == expected


async def test_state_both_ways_and_refused_changes(scene: Scene) -> None:
    room_id = await _hamlet_room(scene, "alias")
    path = f"/rooms/{quote(room_id)}/state"
    power = await scene.state("hamlet", room_id, "m.room.power_levels")
    power["users"][scene.sybil.user_id] = 50
    await scene.ok("hamlet", "PUT", f"{path}/m.room.power_levels", power)
    await scene.ok("hamlet", "PUT", f"{path}/m.room.name", {"name": "Hamlet's hall"})
    assert await scene.sees_state("synapse", room_id, "m.room.power_levels", power)
    assert await scene.sees_state("synapse", room_id, "m.room.name", {"name": "Hamlet's hall"})
    await scene.ok("synapse", "PUT", f"{path}/m.room.topic", {"topic": "from synapse"})
    assert await scene.sees_state("hamlet", room_id, "m.room.topic", {"topic": "from synapse"})

    # Hamlet demotes Synapse's user, and holds the news: Synapse still
    # believes its user may change the topic and sends the change.
    scene.gate.open.clear()
    power["users"][scene.sybil.user_id] = 0
    await scene.ok("hamlet", "PUT", f"{path}/m.room.power_levels", power)
    since = (await scene.ok("hamlet", "GET", "/sync?timeout=0"))["next_batch"]
    late = await scene.ok("synapse", "PUT", f"{path}/m.room.topic", {"topic": "too late"})
    hs = scene.hamlet.hs

    async def soft_failed() -> bool:
        stored = await hs.events_store.get_event(late["event_id"])
        return stored is not None and stored.soft_failed

    assert await eventually(soft_failed, bool)
    scene.gate.open.set()
    assert await scene.state("hamlet", room_id, "m.room.topic") == {"topic": "from synapse"}
    timeline = (await scene.sync_since("hamlet", since))["rooms"]["join"].get(room_id, {})
    topics = [
        e for e in timeline.get("timeline", {}).get("events", []) if e["type"] == "m.room.topic"
    ]
    assert topics == []
    # Synapse hears of the demotion, and the room still carries messages both ways.
    assert await scene.sees_state("synapse", room_id, "m.room.power_levels", power)
    await scene.ok(
        "synapse",
        "PUT",
        f"/rooms/{quote(room_id)}/send/{MESSAGE}/after",
        {"msgtype": "m.text", "body": "after"},
    )

    async def arrived() -> bool:
        return (await scene.bodies("hamlet", room_id))[-1:] == ["after"]

    assert await eventually(arrived, bool)


async def test_a_hamlet_user_without_power_cannot_change_a_synapse_room(scene: Scene) -> None:
    made = await scene.ok(
        "synapse", "POST", "/createRoom", {"preset": "public_chat", "topic": "synapse's"}
    )
    room_id = made["room_id"]
    via = quote(scene.synapse.server_name)
    await scene.ok("hamlet", "POST", f"/join/{quote(room_id)}?via={via}", {})
    path = f"/rooms/{quote(room_id)}/state/m.room.topic"
    status, refused = await scene.on("hamlet", "PUT", path, {"topic": "hamlet's"})
    assert (status, refused["errcode"]) == (403, "M_FORBIDDEN")
    await scene.ok(
        "hamlet",
        "PUT",
        f"/rooms/{quote(room_id)}/send/{MESSAGE}/m1",
        {"msgtype": "m.text", "body": "hi"},
    )

    async def arrived() -> bool:
        return (await scene.bodies("synapse", room_id))[-1:] == ["hi"]

    assert await eventually(arrived, bool)
    # Synapse's room is v12 (its default): joining and sending there work too.
    topic = await scene.state("synapse", room_id, "m.room.topic")
    assert topic["topic"] == "synapse's"

    # Synapse grants Hamlet's user the power, then takes it back while
    # Hamlet does not hear of it: Hamlet sends its user's change, Synapse
    # refuses it by its current state.
    power_path = f"/rooms/{quote(room_id)}/state/m.room.power_levels"
    power = await scene.state("synapse", room_id, "m.room.power_levels")
    power["users"][scene.alice.user_id] = 50
    await scene.ok("synapse", "PUT", power_path, power)
    assert await scene.sees_state("hamlet", room_id, "m.room.power_levels", power)
    scene.inbound.clear()
    power["users"][scene.alice.user_id] = 0
    await scene.ok("synapse", "PUT", power_path, power)
    await scene.ok("hamlet", "PUT", path, {"topic": "too late"})
    later = {"msgtype": "m.text", "body": "later"}
    await scene.ok("hamlet", "PUT", f"/rooms/{quote(room_id)}/send/{MESSAGE}/m2", later)

    async def later_arrived() -> bool:
        return (await scene.bodies("synapse", room_id))[-1:] == ["later"]

    assert await eventually(later_arrived, bool)
    assert await scene.state("synapse", room_id, "m.room.topic") == topic
    scene.inbound.set()
    # Hamlet then hears of the demotion, concurrent with its user's topic:
    # resolving the fork (v12) keeps the demotion and drops the topic.
    assert await scene.sees_state("hamlet", room_id, "m.room.power_levels", power)
    assert await scene.sees_state("hamlet", room_id, "m.room.topic", topic)


async def test_typing_receipts_and_presence_both_ways(scene: Scene) -> None:
    room_id = await _hamlet_room(scene, "via")
    room = f"/rooms/{quote(room_id)}"
    sent = await scene.ok(
        "hamlet", "PUT", f"{room}/send/{MESSAGE}/r1", {"msgtype": "m.text", "body": "read me"}
    )
    event_id = sent["event_id"]

    async def synapse_has_it() -> bool:
        return (await scene.bodies("synapse", room_id))[-1:] == ["read me"]

    assert await eventually(synapse_has_it, bool)
    since = {
        side: (await scene.ok(side, "GET", "/sync?timeout=0"))["next_batch"]
        for side in ("hamlet", "synapse")
    }
    users = {"hamlet": scene.alice.user_id, "synapse": scene.sybil.user_id}
    for side in ("hamlet", "synapse"):
        me = quote(users[side])
        await scene.ok(side, "PUT", f"{room}/typing/{me}", {"typing": True, "timeout": 30000})
        await scene.ok(side, "POST", f"{room}/receipt/m.read/{quote(event_id)}", {})
        await scene.ok(
            side, "PUT", f"/presence/{me}/status",
            {"presence": "online", "status_msg": f"on {side}"},
        )  # fmt: skip

    for side, other in (("hamlet", "synapse"), ("synapse", "hamlet")):
        seen, status_msg = Seen(users[other]), f"on {other}"

        async def everything_arrived(
            side: str = side, seen: Seen = seen, status_msg: str = status_msg
        ) -> bool:
            seen.read(await scene.sync_since(side, since[side]), room_id, event_id)
            return seen.typing and seen.receipt and seen.status_msg == status_msg

        assert await eventually(everything_arrived, bool), (side, seen)
