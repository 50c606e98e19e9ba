"""To-device messages for another server's users: an m.direct_to_device EDU
per server, delivered once (a retried transaction or message id delivers
nothing twice), in order per sender, within the local caps."""

from __future__ import annotations

from typing import Any

from tests.conftest import settle
from tests.e2e.federated_support import A, B, SlowTransport
from tests.federation.inbound_support import client, send_txn, sync, txn
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user


async def _inbox(h: Harness, host: str, user: TestUser) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = (
        (await sync(h, host, user)).get("to_device", {}).get("events", [])
    )
    return events


async def test_messages_both_ways_in_order(h: Harness) -> None:
    alice = await make_user(h, "alice", host=A)
    bob = await make_user(h, "bob", host=B)
    for i in range(3):
        body = {"messages": {bob.user_id: {bob.device_id: {"n": i}}}}
        resp = await client(h, A, "PUT", f"/sendToDevice/m.test/t{i}", alice, body)
        assert resp.status == 200, resp.json
    # The same txn id again sends nothing.
    body = {"messages": {bob.user_id: {bob.device_id: {"n": 0}}}}
    await client(h, A, "PUT", "/sendToDevice/m.test/t0", alice, body)
    await settle()
    got = await _inbox(h, B, bob)
    assert [(e["sender"], e["type"], e["content"]) for e in got] == [
        (alice.user_id, "m.test", {"n": i}) for i in range(3)
    ]
    body = {"messages": {alice.user_id: {"*": {"hello": "alice"}}}}
    assert (await client(h, B, "PUT", "/sendToDevice/m.test/b1", bob, body)).status == 200
    await settle()
    got = await _inbox(h, A, alice)
    assert [e["content"] for e in got] == [{"hello": "alice"}]


async def test_delivered_once_and_bounded(h: Harness, transport: SlowTransport) -> None:
    alice = await make_user(h, "alice", host=A)
    bob = await make_user(h, "bob", host=B)

    def edu(message_id: str, sender: str, content: Any) -> dict[str, Any]:
        return {
            "edu_type": "m.direct_to_device",
            "content": {
                "sender": sender,
                "type": "m.test",
                "message_id": message_id,
                "messages": {alice.user_id: {alice.device_id: content}},
            },
        }

    once = edu("m1", bob.user_id, {"n": 1})
    await send_txn(transport, h, B, A, "x1", txn(B, edus=[once]))
    await send_txn(transport, h, B, A, "x2", txn(B, edus=[once]))
    # Another server's user, an oversized message, a non-object: dropped.
    big = {"pad": "x" * (h.servers[A].config.limits.max_to_device_message_size + 1)}
    edus = [edu("m2", "@mallory:a.test", {"n": 2}), edu("m3", bob.user_id, big)]
    edus.append({"edu_type": "m.direct_to_device", "content": {"sender": bob.user_id}})
    # More messages than one request may carry: dropped whole.
    cap = h.servers[A].config.limits.max_to_device_messages_per_request
    crowd = edu("m4", bob.user_id, {"n": 4})
    crowd["content"]["messages"][alice.user_id].update({f"D{i}": {} for i in range(cap)})
    edus.append(crowd)
    await send_txn(transport, h, B, A, "x3", txn(B, edus=edus))
    await settle()
    got = await _inbox(h, A, alice)
    assert [e["content"] for e in got] == [{"n": 1}]

    # A request past the per-request cap is refused before anything is sent.
    body = {"messages": {bob.user_id: {f"D{i}": {} for i in range(cap + 1)}}}
    resp = await client(h, A, "PUT", "/sendToDevice/m.test/big", alice, body)
    assert resp.status == 413
