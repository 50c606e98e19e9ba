"""/keys/upload, /keys/query and /keys/claim over HTTP."""

from __future__ import annotations

import asyncio

from tests.e2e.helpers import Ed25519, call, device_keys, one_time_keys, sync
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user


async def test_upload_and_query(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    key = Ed25519()
    keys = device_keys(alice, key)
    body = {
        "device_keys": keys,
        "one_time_keys": one_time_keys(key, alice, range(3)),
        "fallback_keys": {"signed_curve25519:fb1": {"key": "fallback", "fallback": True}},
    }
    resp = await call(harness, "POST", "/keys/upload", alice, body)
    assert resp.status == 200, resp.json
    assert resp.json == {"one_time_key_counts": {"signed_curve25519": 3}}
    # The same upload again is harmless; an empty one reports the counts.
    resp = await call(harness, "POST", "/keys/upload", alice, body)
    assert resp.status == 200 and resp.json["one_time_key_counts"] == {"signed_curve25519": 3}
    resp = await call(harness, "POST", "/keys/upload", alice, {})
    assert resp.json == {"one_time_key_counts": {"signed_curve25519": 3}}

    await call(harness, "PUT", f"/devices/{alice.device_id}", alice, {"display_name": "Phone"})
    resp = await call(
        harness, "POST", "/keys/query", bob, {"device_keys": {alice.user_id: []}, "timeout": 10}
    )
    assert resp.status == 200, resp.json
    got = resp.json["device_keys"][alice.user_id][alice.device_id]
    assert got["unsigned"] == {"device_display_name": "Phone"}
    del got["unsigned"]
    assert got == keys  # stored as given, signatures and all
    assert resp.json["failures"] == {}
    for field in ("master_keys", "self_signing_keys", "user_signing_keys"):
        assert resp.json[field] == {}

    # Asking for named devices: unknown ones are left out; users without keys are empty.
    query = {"device_keys": {alice.user_id: [alice.device_id, "NOPE"], bob.user_id: []}}
    resp = await call(harness, "POST", "/keys/query", bob, query)
    assert list(resp.json["device_keys"][alice.user_id]) == [alice.device_id]
    assert resp.json["device_keys"][bob.user_id] == {}
    query = {"device_keys": {alice.user_id: ["NOPE"]}}
    resp = await call(harness, "POST", "/keys/query", bob, query)
    assert resp.json["device_keys"][alice.user_id] == {}
    # Remote users: no federation, so a failure for their server.
    query = {"device_keys": {"@carol:elsewhere.example": []}}
    resp = await call(harness, "POST", "/keys/query", bob, query)
    assert resp.status == 200
    assert resp.json["device_keys"] == {}
    assert "elsewhere.example" in resp.json["failures"]

    # A second device of alice's shows up too.
    login2 = await harness.hs.registration.create_login(alice.user_id, "ALICE2", None)
    alice2 = TestUser(alice.user_id, login2["access_token"], "ALICE2")
    resp = await call(
        harness, "POST", "/keys/upload", alice2, {"device_keys": device_keys(alice2, Ed25519())}
    )
    assert resp.status == 200 and resp.json == {"one_time_key_counts": {"signed_curve25519": 0}}
    resp = await call(harness, "POST", "/keys/query", bob, {"device_keys": {alice.user_id: []}})
    assert sorted(resp.json["device_keys"][alice.user_id]) == sorted([alice.device_id, "ALICE2"])


async def test_upload_refusals(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    key = Ed25519()

    async def upload(body: object, user=alice) -> tuple[int, str]:  # type: ignore[no-untyped-def]
        resp = await call(harness, "POST", "/keys/upload", user, body)
        return resp.status, resp.json.get("errcode", "")

    # Keys of another device, or of another user: 400.
    assert (await upload({"device_keys": device_keys(alice, key, "OTHERDEVICE")}))[0] == 400
    assert (await upload({"device_keys": device_keys(alice, key)}, bob))[0] == 400
    bad = device_keys(alice, key)
    bad["keys"] = {"ed25519:X": 5}
    assert await upload({"device_keys": bad}) == (400, "M_BAD_JSON")
    bad = device_keys(alice, key)
    del bad["algorithms"]
    assert await upload({"device_keys": bad}) == (400, "M_BAD_JSON")
    assert await upload({"device_keys": "nope"}) == (400, "M_BAD_JSON")
    assert await upload({"one_time_keys": []}) == (400, "M_BAD_JSON")
    assert await upload({"one_time_keys": {"nocolon": {"key": "x"}}}) == (400, "M_BAD_JSON")
    assert await upload({"one_time_keys": {"signed_curve25519:a": 5}}) == (400, "M_BAD_JSON")
    two = {"signed_curve25519:a": {"key": "1"}, "signed_curve25519:b": {"key": "2"}}
    assert await upload({"fallback_keys": two}) == (400, "M_BAD_JSON")
    assert await upload([1, 2]) == (400, "M_BAD_JSON")
    resp = await harness.request(
        "POST", "/_matrix/client/v3/keys/upload", body=b"{", token=alice.token
    )
    assert resp.status == 400 and resp.json["errcode"] == "M_NOT_JSON"
    assert (await upload({}, None))[0] == 401

    # A one-time key id reused with other content: 400, and nothing of that upload is kept.
    assert (await upload({"one_time_keys": {"signed_curve25519:a": {"key": "1"}}}))[0] == 200
    status, errcode = await upload(
        {
            "one_time_keys": {
                "signed_curve25519:a": {"key": "2"},
                "signed_curve25519:b": {"key": "3"},
            }
        }
    )
    assert status == 400 and errcode == "M_INVALID_PARAM"
    resp = await call(harness, "POST", "/keys/upload", alice, {})
    assert resp.json["one_time_key_counts"] == {"signed_curve25519": 1}

    # Malformed queries and claims.
    for path, body in (
        ("/keys/query", {}),
        ("/keys/query", {"device_keys": []}),
        ("/keys/query", {"device_keys": {alice.user_id: "DEV"}}),
        ("/keys/query", {"device_keys": {"not-a-user": []}}),
        ("/keys/claim", {}),
        ("/keys/claim", {"one_time_keys": {alice.user_id: {"DEV": 5}}}),
        ("/keys/claim", {"one_time_keys": {alice.user_id: ["DEV"]}}),
    ):
        resp = await call(harness, "POST", path, bob, body)
        assert resp.status == 400, (path, body, resp.json)


async def test_claim_and_fallback(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    key = Ed25519()
    otks = one_time_keys(key, alice, range(2))
    fallback = {"signed_curve25519:fb": {"key": "fallback", "fallback": True}}
    body = {
        "device_keys": device_keys(alice, key),
        "one_time_keys": otks,
        "fallback_keys": fallback,
    }
    assert (await call(harness, "POST", "/keys/upload", alice, body)).status == 200
    initial = await sync(harness, alice)
    assert initial["device_one_time_keys_count"] == {"signed_curve25519": 2}
    assert initial["device_unused_fallback_key_types"] == ["signed_curve25519"]
    assert initial["device_lists"] == {"changed": [], "left": []}

    claim = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}
    claimed = []
    for _ in range(2):
        resp = await call(harness, "POST", "/keys/claim", bob, claim)
        assert resp.status == 200, resp.json
        assert resp.json["failures"] == {}
        got = resp.json["one_time_keys"][alice.user_id][alice.device_id]
        claimed.append(got)
    assert sorted(k for c in claimed for k in c) == sorted(otks)
    assert all(otks[k] == v for c in claimed for k, v in c.items())
    since = initial["next_batch"]
    body = await sync(harness, alice, f"?since={since}")
    assert body["device_one_time_keys_count"] == {"signed_curve25519": 0}
    assert body["device_unused_fallback_key_types"] == ["signed_curve25519"]

    # Out of one-time keys: the fallback key, again and again, now marked used.
    for _ in range(2):
        resp = await call(harness, "POST", "/keys/claim", bob, claim)
        assert resp.json["one_time_keys"][alice.user_id][alice.device_id] == fallback
    body = await sync(harness, alice, f"?since={since}")
    assert body["device_unused_fallback_key_types"] == []
    # Re-uploading the same fallback key keeps it used; a new one is unused.
    await call(harness, "POST", "/keys/upload", alice, {"fallback_keys": fallback})
    assert (await sync(harness, alice))["device_unused_fallback_key_types"] == []
    new_fallback = {"signed_curve25519:fb2": {"key": "fallback2", "fallback": True}}
    await call(harness, "POST", "/keys/upload", alice, {"fallback_keys": new_fallback})
    assert (await sync(harness, alice))["device_unused_fallback_key_types"] == ["signed_curve25519"]

    # Unknown devices, algorithms and users get nothing; remote users a failure.
    claim = {
        "one_time_keys": {
            alice.user_id: {"NOPE": "signed_curve25519", alice.device_id: "other_alg"},
            "@x:elsewhere.example": {"D": "signed_curve25519"},
        }
    }
    resp = await call(harness, "POST", "/keys/claim", bob, claim)
    assert resp.status == 200
    assert resp.json["one_time_keys"] == {}
    assert "elsewhere.example" in resp.json["failures"]


async def test_concurrent_claims_never_share_a_key(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    key = Ed25519()
    otks = one_time_keys(key, alice, range(20))
    fallback = {"signed_curve25519:fb": {"key": "fallback", "fallback": True}}
    body = {"one_time_keys": otks, "fallback_keys": fallback}
    assert (await call(harness, "POST", "/keys/upload", alice, body)).status == 200
    claim = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}
    responses = await asyncio.gather(
        *(call(harness, "POST", "/keys/claim", bob, claim) for _ in range(30))
    )
    assert all(r.status == 200 for r in responses)
    got = [k for r in responses for k in r.json["one_time_keys"][alice.user_id][alice.device_id]]
    one_time = [k for k in got if k != "signed_curve25519:fb"]
    assert len(one_time) == len(set(one_time)) == 20
    assert set(one_time) == set(otks)
    assert got.count("signed_curve25519:fb") == 10
    resp = await call(harness, "POST", "/keys/upload", alice, {})
    assert resp.json["one_time_key_counts"] == {"signed_curve25519": 0}


async def test_deleting_a_device_deletes_its_keys(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    login2 = await harness.hs.registration.create_login(alice.user_id, "ALICE2", None)
    alice2 = TestUser(alice.user_id, login2["access_token"], "ALICE2")
    key = Ed25519()
    body = {
        "device_keys": device_keys(alice2, key),
        "one_time_keys": one_time_keys(key, alice2, range(2)),
    }
    assert (await call(harness, "POST", "/keys/upload", alice2, body)).status == 200
    before = harness.hs.device_lists.current_position()
    resp = await call(
        harness,
        "POST",
        "/delete_devices",
        alice,
        {
            "devices": ["ALICE2"],
            "auth": {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": alice.user_id},
                "password": "password",
            },
        },
    )
    assert resp.status == 200, resp.json
    assert harness.hs.device_lists.current_position() > before
    resp = await call(harness, "POST", "/keys/query", bob, {"device_keys": {alice.user_id: []}})
    assert resp.json["device_keys"][alice.user_id] == {}
    claim = {"one_time_keys": {alice.user_id: {"ALICE2": "signed_curve25519"}}}
    resp = await call(harness, "POST", "/keys/claim", bob, claim)
    assert resp.json["one_time_keys"] == {}
