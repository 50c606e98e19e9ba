"""m.device_list_update and m.signing_key_update across servers: a change
on one server reaches the /sync of users on the other that share a room
(`device_lists.changed`, then `left` when they no longer do), the cached
list follows it without refetching, and a gap in the prev_id chain makes
the receiver fetch the list whole through /user/devices."""

from __future__ import annotations

from urllib.parse import quote

from hamlet.handlers.federation.devices import PRUNE_INTERVAL_S
from tests.conftest import advance, settle
from tests.e2e.federated_support import V1, A, B, SlowTransport, query, room_on_b, upload_keys
from tests.e2e.helpers import CrossSigning, Ed25519
from tests.federation.inbound_support import client, send_txn, sync, txn
from tests.support.harness import Harness
from tests.support.users import make_user


def _changed(body: dict[str, object]) -> tuple[list[str], list[str]]:
    lists = body.get("device_lists", {})
    assert isinstance(lists, dict)
    return lists.get("changed", []), lists.get("left", [])


async def test_changes_reach_the_other_server(h: Harness, transport: SlowTransport) -> None:
    alice = await make_user(h, "alice", host=A)
    bob = await make_user(h, "bob", host=B)
    await upload_keys(h, B, bob, Ed25519())
    room = await room_on_b(h, bob, "devs", alice)
    await query(h, A, alice, bob.user_id)  # cached from now on
    since = (await sync(h, A, alice))["next_batch"]

    # A new device of bob's, with keys.
    login = await h.servers[B].registration.create_login(bob.user_id, "BOB2", None)
    bob2 = type(bob)(bob.user_id, login["access_token"], "BOB2")
    await upload_keys(h, B, bob2, Ed25519())
    await settle()
    body = await sync(h, A, alice, since)
    assert bob.user_id in _changed(body)[0]
    resp = await query(h, A, alice, bob.user_id)
    assert set(resp.json["device_keys"][bob.user_id]) == {bob.device_id, "BOB2"}
    # /user/keys/query gave no position: the first update fetched the
    # list whole (with one), the later ones apply to it.
    assert transport.count("POST", B, f"{V1}/user/keys/query") == 1
    assert transport.count("GET", B, f"{V1}/user/devices/") == 1

    # Renamed, then deleted: each an update the cache follows.
    since = body["next_batch"]
    await client(h, B, "PUT", "/devices/BOB2", bob, {"display_name": "Tablet"})
    await h.servers[B].devices.delete_devices(bob.user_id, ["BOB2"])
    await settle()
    assert bob.user_id in _changed(await sync(h, A, alice, since))[0]
    resp = await query(h, A, alice, bob.user_id)
    assert set(resp.json["device_keys"][bob.user_id]) == {bob.device_id}
    assert transport.count("GET", B, f"{V1}/user/devices/") == 1

    # Cross-signing keys travel as m.signing_key_update.
    cross = CrossSigning()
    assert (
        await client(h, B, "POST", "/keys/device_signing/upload", bob, cross.body(bob))
    ).status == 200
    await settle()
    resp = await query(h, A, alice, bob.user_id)
    assert resp.json["master_keys"][bob.user_id]["keys"] == cross.body(bob)["master_key"]["keys"]
    assert transport.count("POST", B, f"{V1}/user/keys/query") == 1
    assert transport.count("GET", B, f"{V1}/user/devices/") == 1

    # Once no room is shared, bob is `left`.
    since = (await sync(h, A, alice))["next_batch"]
    assert (await client(h, A, "POST", f"/rooms/{room}/leave", alice, {})).status == 200
    await settle()
    assert bob.user_id in _changed(await sync(h, A, alice, since))[1]
    # Bob's list is dropped meanwhile: joining again, it is fetched anew.
    await advance(PRUNE_INTERVAL_S)
    joined = await client(h, A, "POST", f"/join/{quote('#devs:b.test')}", alice, {})
    assert joined.status == 200, joined.json
    await settle()
    await query(h, A, alice, bob.user_id)
    assert transport.count("POST", B, f"{V1}/user/keys/query") == 2


async def test_a_gap_resyncs_and_strangers_are_ignored(
    h: Harness, transport: SlowTransport
) -> None:
    alice = await make_user(h, "alice", host=A)
    bob = await make_user(h, "bob", host=B)
    await upload_keys(h, B, bob, Ed25519())
    await room_on_b(h, bob, "gap", alice)
    # The list is cached with the position /user/devices gives.
    await h.servers[A].remote_device_lists.resync(bob.user_id)
    assert transport.count("GET", B, f"{V1}/user/devices/") == 1
    since = (await sync(h, A, alice))["next_batch"]

    def update(user_id: str, stream_id: int, prev: list[int]) -> dict[str, object]:
        content = {"user_id": user_id, "device_id": "NEW", "stream_id": stream_id, "prev_id": prev}
        return {"edu_type": "m.device_list_update", "content": content}

    # An update whose prev_id we never saw: B is asked for the whole list.
    await send_txn(transport, h, B, A, "t1", txn(B, edus=[update(bob.user_id, 10_000, [9_999])]))
    await settle()
    assert transport.count("GET", B, f"{V1}/user/devices/") == 2
    assert bob.user_id in _changed(await sync(h, A, alice, since))[0]
    resp = await query(h, A, alice, bob.user_id)
    assert list(resp.json["device_keys"][bob.user_id]) == [bob.device_id]

    # B speaking for another server's user, or for a user sharing no room: ignored.
    since = (await sync(h, A, alice))["next_batch"]
    carol = await make_user(h, "carol", host=B)
    edus = [update("@mallory:a.test", 1, []), update(carol.user_id, 1, [])]
    await send_txn(transport, h, B, A, "t2", txn(B, edus=edus))
    await settle()
    assert _changed(await sync(h, A, alice, since)) == ([], [])
    assert transport.count("GET", B, f"{V1}/user/devices/") == 2
