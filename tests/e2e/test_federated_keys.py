"""/keys/query and /keys/claim for another server's users: one request per
server, at once, each within the client's timeout; failures by server name;
the served /user/keys/query, /user/keys/claim and /user/devices."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import advance, settle
from tests.e2e.federated_support import (
    V1,
    A,
    B,
    SlowTransport,
    query,
    room_on_b,
    upload_keys,
)
from tests.e2e.helpers import CrossSigning, Ed25519
from tests.federation.inbound_support import client
from tests.support.federation import RemoteError
from tests.support.harness import Harness
from tests.support.users import make_user


async def test_query_and_claim_a_remote_users_keys(h: Harness, transport: SlowTransport) -> None:
    alice = await make_user(h, "alice", host=A)
    bob = await make_user(h, "bob", host=B)
    signer = Ed25519()
    keys = await upload_keys(h, B, bob, signer, otks=2)
    await client(h, B, "PUT", f"/devices/{bob.device_id}", bob, {"display_name": "Bob's phone"})
    cross = CrossSigning()
    resp = await client(h, B, "POST", "/keys/device_signing/upload", bob, cross.body(bob))
    assert resp.status == 200, resp.json

    resp = await query(h, A, alice, bob.user_id)
    assert resp.json["failures"] == {}
    got = resp.json["device_keys"][bob.user_id][bob.device_id]
    # Device names stay home (Synapse's default); the keys are as uploaded.
    assert "device_display_name" not in got.get("unsigned", {})
    assert {k: v for k, v in got.items() if k != "unsigned"} == keys
    assert resp.json["master_keys"][bob.user_id]["keys"] == cross.body(bob)["master_key"]["keys"]
    assert bob.user_id in resp.json["self_signing_keys"]
    assert resp.json["user_signing_keys"] == {}
    assert transport.count("POST", B, f"{V1}/user/keys/query") == 1

    claim = {"one_time_keys": {bob.user_id: {bob.device_id: "signed_curve25519"}}}
    first = await client(h, A, "POST", "/keys/claim", alice, claim)
    second = await client(h, A, "POST", "/keys/claim", alice, claim)
    third = await client(h, A, "POST", "/keys/claim", alice, claim)
    assert first.json["failures"] == {} and second.json["failures"] == {}
    one = first.json["one_time_keys"][bob.user_id][bob.device_id]
    two = second.json["one_time_keys"][bob.user_id][bob.device_id]
    assert len(one) == 1 and one != two
    assert third.json["one_time_keys"] == {}


async def test_shared_room_lists_are_cached(h: Harness, transport: SlowTransport) -> None:
    alice = await make_user(h, "alice", host=A)
    bob = await make_user(h, "bob", host=B)
    await upload_keys(h, B, bob, Ed25519())
    await room_on_b(h, bob, "cache", alice)
    for _ in range(3):
        resp = await query(h, A, alice, bob.user_id)
        assert bob.device_id in resp.json["device_keys"][bob.user_id]
    assert transport.count("POST", B, f"{V1}/user/keys/query") == 1
    # Named devices are answered from the cache too.
    resp = await query(h, A, alice, bob.user_id)
    body = {"device_keys": {bob.user_id: ["NOPE"]}}
    resp = await client(h, A, "POST", "/keys/query", alice, body)
    assert resp.json["device_keys"] == {bob.user_id: {}}
    assert transport.count("POST", B, f"{V1}/user/keys/query") == 1


async def test_failing_servers_go_into_failures(h: Harness, transport: SlowTransport) -> None:
    alice = await make_user(h, "alice", host=A)
    bob = await make_user(h, "bob", host=B)
    await upload_keys(h, B, bob, Ed25519())
    transport.down.add("down.test")
    transport.slow.add("slow.test")
    users = (bob.user_id, "@x:down.test", "@y:slow.test")
    pending = asyncio.get_running_loop().create_task(query(h, A, alice, *users, wait_ms=3000))
    await settle()
    assert not pending.done()
    await advance(3.5)
    resp = await pending
    assert set(resp.json["failures"]) == {"down.test", "slow.test"}
    assert resp.json["failures"]["slow.test"]["status"] == 504
    assert bob.device_id in resp.json["device_keys"][bob.user_id]
    # Garbage from a server is its failure, not ours.
    transport.tamper = lambda dest, path, answer: ["garbage"] if dest == B else answer
    resp = await query(h, A, alice, bob.user_id)
    assert set(resp.json["failures"]) == {B}
    claim = {"one_time_keys": {bob.user_id: {bob.device_id: "signed_curve25519"}}}
    resp = await client(h, A, "POST", "/keys/claim", alice, claim)
    assert resp.status == 200 and set(resp.json["failures"]) == {B}
    bad = await client(h, A, "POST", "/keys/query", alice, {"device_keys": {}, "timeout": "x"})
    assert bad.status == 400


async def test_served_endpoints(h: Harness, transport: SlowTransport) -> None:
    bob = await make_user(h, "bob", host=B)
    signer = Ed25519()
    await upload_keys(h, B, bob, signer, otks=1)
    out = transport.signed_by(A, h.servers[A].signing_key)
    devices = await out.get_json(B, f"{V1}/user/devices/{bob.user_id}")
    assert devices["user_id"] == bob.user_id
    assert isinstance(devices["stream_id"], int) and devices["stream_id"] > 0
    assert [d["device_id"] for d in devices["devices"]] == [bob.device_id]
    assert devices["devices"][0]["keys"]["device_id"] == bob.device_id

    answer: Any = await out.post_json(
        B, f"{V1}/user/keys/query", {"device_keys": {bob.user_id: [], "@z:a.test": []}}
    )
    assert list(answer["device_keys"]) == [bob.user_id]
    assert "user_signing_keys" not in answer
    claimed = await out.post_json(
        B,
        f"{V1}/user/keys/claim",
        {"one_time_keys": {bob.user_id: {bob.device_id: "signed_curve25519"}}},
    )
    assert list(claimed["one_time_keys"][bob.user_id][bob.device_id]) == ["signed_curve25519:k0"]

    for method, path, body in (
        ("GET", f"{V1}/user/devices/@z:a.test", None),
        ("POST", f"{V1}/user/keys/query", {"device_keys": []}),
        ("POST", f"{V1}/user/keys/query", {}),
        (
            "POST",
            f"{V1}/user/keys/query",
            {"device_keys": {f"@u{i}:b.test": [] for i in range(1001)}},
        ),
        ("POST", f"{V1}/user/keys/claim", {"one_time_keys": {bob.user_id: "x"}}),
    ):
        try:
            if method == "GET":
                await out.get_json(B, path)
            else:
                await out.post_json(B, path, body)
        except RemoteError as e:
            assert e.status == 400, (path, body)
        else:
            raise AssertionError(f"{path} {body!r} was accepted")
    # Unsigned requests are refused.
    resp = await h.request("GET", f"{V1}/user/devices/{bob.user_id}", host=B)
    assert resp.status == 401


async def test_signing_a_remote_users_master_key(h: Harness) -> None:
    """Verifying a user of another server: our user-signing key's signature of
    their master key is kept here, and shown to its signer only."""
    alice = await make_user(h, "alice", host=A)
    carol = await make_user(h, "carol", host=A)
    bob = await make_user(h, "bob", host=B)
    mine, theirs = CrossSigning(), CrossSigning()
    for host, user, cross in ((A, alice, mine), (B, bob, theirs)):
        resp = await client(h, host, "POST", "/keys/device_signing/upload", user, cross.body(user))
        assert resp.status == 200, resp.json
    master = (await query(h, A, alice, bob.user_id)).json["master_keys"][bob.user_id]
    signed = mine.user_signing.sign(master, alice.user_id)
    body = {bob.user_id: {theirs.master.public: signed}}
    resp = await client(h, A, "POST", "/keys/signatures/upload", alice, body)
    assert resp.status == 200 and resp.json["failures"] == {}, resp.json

    seen = (await query(h, A, alice, bob.user_id)).json["master_keys"][bob.user_id]
    usk_id = f"ed25519:{mine.user_signing.public}"
    assert usk_id in seen["signatures"][alice.user_id]
    other = (await query(h, A, carol, bob.user_id)).json["master_keys"][bob.user_id]
    assert alice.user_id not in other.get("signatures", {})

    # A signature of something else than their master key is refused.
    forged = mine.user_signing.sign({**master, "usage": ["self_signing"]}, alice.user_id)
    body = {bob.user_id: {theirs.master.public: forged}}
    resp = await client(h, A, "POST", "/keys/signatures/upload", alice, body)
    assert resp.status == 200 and bob.user_id in resp.json["failures"]
