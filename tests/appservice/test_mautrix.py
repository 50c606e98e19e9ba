"""A real mautrix appservice against Hamlet: it registers its bot and a ghost,
receives an invite and a message through transactions, and sends as the
ghost with a massaged timestamp; two tenants, each with its own bridge, at
once."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from mautrix.appservice import AppService
from mautrix.appservice.state_store import ASStateStore
from mautrix.client.state_store.memory import MemoryStateStore
from mautrix.types import Event, EventType, Membership, MessageType, TextMessageEventContent, UserID

from hamlet.config import HomeServerConfig
from tests.accounts.conftest import OPEN_REGISTRATION
from tests.accounts.helpers import register
from tests.appservice.fake_bridge import GUARD_S
from tests.appservice.support import V3
from tests.support.harness import Harness, start_harness

MakeConfig = Callable[..., HomeServerConfig]
#: The two tenants, and the host each one's bridge reaches it by
#: (the registry routes by public_baseurl's host too).
TENANTS = {"one.test": "localhost", "two.test": "127.0.0.1"}


class _StateStore(ASStateStore, MemoryStateStore):
    def __init__(self) -> None:
        ASStateStore.__init__(self)
        MemoryStateStore.__init__(self)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Bridge:
    """A mautrix AppService for one tenant, recording the events it is pushed."""

    def __init__(self, server_name: str, port: int) -> None:
        self.server_name = server_name
        self.port = port
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        self.registration: dict[str, Any] = {
            "id": f"mautrix-{server_name}",
            "url": f"http://127.0.0.1:{port}",
            "as_token": f"as-{server_name}",
            "hs_token": f"hs-{server_name}",
            "sender_localpart": "mbot",
            "namespaces": {
                "users": [{"exclusive": True, "regex": f"@m_.*:{server_name}"}],
            },
            "rate_limited": False,
        }
        self.appservice: AppService | None = None

    async def start(self, hs_url: str) -> None:
        reg = self.registration
        self.appservice = AppService(
            server=hs_url,
            domain=self.server_name,
            as_token=reg["as_token"],
            hs_token=reg["hs_token"],
            bot_localpart=reg["sender_localpart"],
            id=reg["id"],
            state_store=_StateStore(),
        )
        self.appservice.matrix_event_handler(self._on_event)
        await self.appservice.start("127.0.0.1", self.port)

    async def _on_event(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, check: Callable[[Event], bool]) -> Event:
        async def wait() -> Event:
            while True:
                for event in self.events:
                    if check(event):
                        return event
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), GUARD_S)

    async def stop(self) -> None:
        if self.appservice is not None:
            await self.appservice.stop()


async def _scenario(h: Harness, bridge: Bridge) -> None:
    server = bridge.server_name
    host = TENANTS[server]
    assert bridge.appservice is not None
    bot = bridge.appservice.intent
    await bot.ensure_registered()
    assert await bot.whoami() is not None
    ghost = bot.user(UserID(f"@m_alice:{server}"))
    await ghost.ensure_registered()

    token = (await register(h, "human", host=host)).json["access_token"]
    room = await h.request("POST", f"{V3}/createRoom", json={}, token=token, host=host)
    room_id = room.json["room_id"]
    invite = await h.request(
        "POST",
        f"{V3}/rooms/{room_id}/invite",
        json={"user_id": f"@m_alice:{server}"},
        token=token,
        host=host,
    )
    assert invite.status == 200, invite.body
    invited = await bridge.wait_for(
        lambda e: (
            e.type == EventType.ROOM_MEMBER
            and e.content.membership == Membership.INVITE
            and e.state_key == f"@m_alice:{server}"
        )
    )
    assert invited.room_id == room_id
    await ghost.join_room_by_id(room_id)

    sent = await h.request(
        "PUT",
        f"{V3}/rooms/{room_id}/send/m.room.message/1",
        json={"msgtype": "m.text", "body": f"hello {server}"},
        token=token,
        host=host,
    )
    assert sent.status == 200
    message = await bridge.wait_for(
        lambda e: (
            e.type == EventType.ROOM_MESSAGE
            and getattr(e.content, "body", None) == f"hello {server}"
        )
    )
    assert message.sender == f"@human:{server}"

    content = TextMessageEventContent(msgtype=MessageType.TEXT, body="from the other side")
    event_id = await ghost.send_message_event(
        room_id, EventType.ROOM_MESSAGE, content, timestamp=1_234_567_890
    )
    fetched = await h.request(
        "GET", f"{V3}/rooms/{room_id}/event/{event_id}", token=token, host=host
    )
    assert fetched.json["sender"] == f"@m_alice:{server}"
    assert fetched.json["origin_server_ts"] == 1_234_567_890
    assert fetched.json["content"]["body"] == "from the other side"


async def test_mautrix_bridges_on_two_tenants(make_hs_config: MakeConfig) -> None:
    bridges = {name: Bridge(name, _free_port()) for name in TENANTS}
    configs = [
        make_hs_config(
            name,
            **OPEN_REGISTRATION,
            public_baseurl=f"http://{host}/",
            app_services=[bridges[name].registration],
        )
        for name, host in TENANTS.items()
    ]
    h = await start_harness(configs)
    try:
        port = h.client.server.port
        for name, host in TENANTS.items():
            await bridges[name].start(f"http://{host}:{port}")
        await asyncio.gather(*(_scenario(h, bridges[name]) for name in TENANTS))
        # Each bridge saw only its own tenant.
        for name, bridge in bridges.items():
            assert all(e.room_id.endswith(f":{name}") for e in bridge.events if e.room_id)
    finally:
        for bridge in bridges.values():
            await bridge.stop()
        await h.close()
