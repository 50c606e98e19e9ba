"""History across servers with a real Synapse 1.163.2: a Hamlet user pages
back into a Synapse room's earlier history (/backfill from Synapse), Hamlet
fills a gap from Synapse (/get_missing_events), and a Synapse user pages
back into a Hamlet room's history (/backfill from Hamlet)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from hamlet.core.canonical_json import JsonDict
from hamlet.handlers.federation.transactions import PduHandler
from hamlet.handlers.rooms.sender import Sender
from hamlet.homeserver import HomeServer
from tests.interop.synapse import Synapse
from tests.interop.test_synapse_knocks import SynapseUser, synapse_user
from tests.interop.test_synapse_transport import HamletServer, eventually, hamlet, hamlet_tls

__all__ = ["hamlet", "hamlet_tls"]

MESSAGE = "m.room.message"


async def say(user: SynapseUser, room_id: str, text: str) -> None:
    body = {"msgtype": "m.text", "body": text}
    await user.call("PUT", f"/rooms/{quote(room_id)}/send/{MESSAGE}/{text}", body)


async def synapse_bodies_back(user: SynapseUser, room_id: str) -> list[str]:
    """Every message body a Synapse user pages back to, oldest first."""
    bodies: list[str] = []
    token = ""
    for _ in range(15):
        page = await user.call("GET", f"/rooms/{quote(room_id)}/messages?dir=b&limit=10{token}")
        bodies += [e["content"].get("body") for e in page["chunk"] if e["type"] == MESSAGE]
        if not page["chunk"] or "end" not in page:
            break
        token = f"&from={page['end']}"
    return bodies[::-1]


async def hamlet_bodies_back(hs: HomeServer, user_id: str, room_id: str) -> list[str]:
    """What a Hamlet user pages back to through /messages' handler, oldest first."""
    bodies: list[str] = []
    token: str | None = None
    for _ in range(15):
        page = await hs.pagination.get_messages(
            user_id,
            None,
            room_id,
            from_token=token,
            to_token=None,
            backwards=True,
            limit=10,
            event_filter=None,
        )
        bodies += [e["content"].get("body") for e in page["chunk"] if e["type"] == MESSAGE]
        token = page.get("end")
        if token is None:
            break
    return bodies[::-1]


async def synapse_room_with_hamlet_user(
    hamlet: HamletServer, synapse: Synapse, history: int
) -> tuple[SynapseUser, str, str]:
    sybil = await synapse_user(synapse)
    suffix = secrets.token_hex(4)
    made = await sybil.call(
        "POST",
        "/createRoom",
        {"preset": "public_chat", "room_alias_name": f"hist{suffix}", "room_version": "10"},
    )
    room_id = made["room_id"]
    for i in range(history):
        await say(sybil, room_id, f"s{i}")
    hs = hamlet.hs
    user_id = await hs.registration.register_user(f"jo{suffix}")
    await hs.federation_joins.join(user_id, room_id, [synapse.server_name])
    return sybil, user_id, room_id


async def test_a_hamlet_user_pages_back_into_a_synapse_rooms_history(
    hamlet: HamletServer, synapse: Synapse
) -> None:
    _sybil, user_id, room_id = await synapse_room_with_hamlet_user(hamlet, synapse, 30)
    assert await hamlet_bodies_back(hamlet.hs, user_id, room_id) == [f"s{i}" for i in range(30)]


@dataclass
class LosingPdus:
    """Drops every PDU it is given while `losing` (answering as if taken):
    Hamlet misses them as if its listener had been away."""

    inner: PduHandler
    losing: bool = True
    lost: list[str] = field(default_factory=list)

    async def handle_pdus(self, origin: str, pdus: Sequence[Any]) -> dict[str, JsonDict]:
        if not self.losing:
            return await self.inner.handle_pdus(origin, pdus)
        self.lost += [str(p.get("content", {}).get("body")) for p in pdus if isinstance(p, dict)]
        return {}


async def test_hamlet_fetches_a_gap_from_synapse(hamlet: HamletServer, synapse: Synapse) -> None:
    sybil, _user, room_id = await synapse_room_with_hamlet_user(hamlet, synapse, 0)
    transactions = hamlet.hs.federation_transactions
    losing = LosingPdus(transactions.pdus)
    transactions.set_pdu_handler(losing)
    for i in range(5):
        await say(sybil, room_id, f"lost{i}")

    async def lost() -> list[str]:
        return losing.lost

    assert await eventually(lost, lambda bodies: "lost4" in bodies)
    losing.losing = False
    await say(sybil, room_id, "found")

    async def ours() -> list[str]:
        # Stored as news (positive positions), not backfilled as history.
        events = await hamlet.hs.room_history_store.get_room_events(
            room_id, after=0, before=None, limit=50, backwards=False
        )
        return [str(e.event.content.get("body")) for e in events if e.event.type == MESSAGE]

    wanted = [*(f"lost{i}" for i in range(5)), "found"]
    assert await eventually(ours, lambda bodies: bodies == wanted), await ours()


async def test_a_synapse_user_pages_back_into_a_hamlet_rooms_history(
    hamlet: HamletServer, synapse: Synapse
) -> None:
    hs = hamlet.hs
    owner = await hs.registration.register_user(f"host{secrets.token_hex(4)}")
    made = await hs.event_pipeline.create_room(
        Sender.server(owner), {"preset": "public_chat", "room_version": "10"}
    )
    room_id = made["room_id"]
    for i in range(30):
        text = {"msgtype": "m.text", "body": f"h{i}"}
        await hs.event_pipeline.send(Sender.server(owner), room_id, MESSAGE, text)
    sybil = await synapse_user(synapse)
    await sybil.call("POST", f"/join/{quote(room_id)}?server_name={quote(hamlet.server_name)}", {})
    assert await synapse_bodies_back(sybil, room_id) == [f"h{i}" for i in range(30)]
