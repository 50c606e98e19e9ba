"""/keys/device_signing/upload and /keys/signatures/upload over HTTP."""

from __future__ import annotations

from typing import Any

from tests.e2e.helpers import CrossSigning, Ed25519, call, device_keys, shared_room, sync
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user

PASSWORD_AUTH = {
    "type": "m.login.password",
    "identifier": {"type": "m.id.user", "user": "alice"},
    "password": "password",
}


async def _query(harness: Harness, user: TestUser, *targets: TestUser) -> dict[str, Any]:
    body = {"device_keys": {t.user_id: [] for t in targets}}
    resp = await call(harness, "POST", "/keys/query", user, body)
    assert resp.status == 200, resp.json
    result: dict[str, Any] = resp.json
    return result


async def test_device_signing_upload_and_uia(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    await shared_room(harness, alice, bob)
    since = (await sync(harness, bob))["next_batch"]
    cs = CrossSigning()
    body = cs.body(alice)

    # First upload: no master key yet, so no UIA.
    resp = await call(harness, "POST", "/keys/device_signing/upload", alice, body)
    assert resp.status == 200, resp.json
    got = await _query(harness, bob, alice)
    assert got["master_keys"][alice.user_id] == body["master_key"]
    assert got["self_signing_keys"][alice.user_id] == body["self_signing_key"]
    assert got["user_signing_keys"] == {}  # only alice sees her user-signing key
    own = await _query(harness, alice, alice)
    assert own["user_signing_keys"][alice.user_id] == body["user_signing_key"]
    # Bob is told alice's keys changed.
    changed = (await sync(harness, bob, f"?since={since}"))["device_lists"]["changed"]
    assert alice.user_id in changed

    # The same keys again: idempotent, still no UIA.
    resp = await call(harness, "POST", "/keys/device_signing/upload", alice, body)
    assert resp.status == 200, resp.json

    # New keys now need UIA (password).
    cs2 = CrossSigning()
    body2 = cs2.body(alice)
    resp = await call(harness, "POST", "/keys/device_signing/upload", alice, body2)
    assert resp.status == 401
    assert resp.json["flows"] == [{"stages": ["m.login.password"]}]
    session = resp.json["session"]
    wrong = {**PASSWORD_AUTH, "password": "wrong", "session": session}
    resp = await call(
        harness, "POST", "/keys/device_signing/upload", alice, {**body2, "auth": wrong}
    )
    assert resp.status == 401 and resp.json["errcode"] == "M_FORBIDDEN"
    auth = {**PASSWORD_AUTH, "session": session}
    resp = await call(
        harness, "POST", "/keys/device_signing/upload", alice, {**body2, "auth": auth}
    )
    assert resp.status == 200, resp.json
    got = await _query(harness, bob, alice)
    assert got["master_keys"][alice.user_id] == body2["master_key"]

    # A new self-signing key alone, signed by the stored master key (with UIA).
    ssk = CrossSigning(master=cs2.master).body(alice)["self_signing_key"]
    resp = await call(
        harness,
        "POST",
        "/keys/device_signing/upload",
        alice,
        {"self_signing_key": ssk, "auth": PASSWORD_AUTH},
    )
    assert resp.status == 200, resp.json
    assert (await _query(harness, bob, alice))["self_signing_keys"][alice.user_id] == ssk


async def test_device_signing_refusals(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    cs = CrossSigning()

    async def upload(body: dict[str, Any], user: TestUser = alice) -> tuple[int, str]:
        resp = await call(harness, "POST", "/keys/device_signing/upload", user, body)
        return resp.status, resp.json.get("errcode", "")

    # The self-signing key signed by another key than the master key.
    body = cs.body(alice)
    body["self_signing_key"] = Ed25519().sign(
        {k: v for k, v in body["self_signing_key"].items() if k != "signatures"}, alice.user_id
    )
    assert await upload(body) == (400, "M_INVALID_SIGNATURE")
    # Not signed at all.
    body = cs.body(alice)
    del body["user_signing_key"]["signatures"]
    assert await upload(body) == (400, "M_INVALID_SIGNATURE")
    # No master key anywhere to check against.
    body = cs.body(alice)
    del body["master_key"]
    assert await upload(body) == (400, "M_MISSING_PARAM")
    # Keys for another user, the wrong usage, malformed keys.
    assert (await upload(cs.body(alice), bob))[0] == 400
    body = cs.body(alice)
    body["master_key"]["usage"] = ["self_signing"]
    assert await upload(body) == (400, "M_BAD_JSON")
    body = cs.body(alice)
    body["master_key"]["keys"] = {"ed25519:abc": "def"}
    assert await upload(body) == (400, "M_BAD_JSON")
    assert await upload({"master_key": "nope"}) == (400, "M_BAD_JSON")
    # A public key equal to a device id: 403.
    login = await harness.hs.registration.create_login(alice.user_id, cs.master.public, None)
    assert login["device_id"] == cs.master.public
    assert await upload(cs.body(alice)) == (403, "M_FORBIDDEN")
    # Nothing was stored by any of these.
    assert (await _query(harness, bob, alice))["master_keys"] == {}


async def test_signatures_upload(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    carol = await make_user(harness, "carol")
    await shared_room(harness, alice, bob, carol)
    alice_device = Ed25519()
    keys = device_keys(alice, alice_device)
    assert (await call(harness, "POST", "/keys/upload", alice, {"device_keys": keys})).status == 200
    acs, bcs = CrossSigning(), CrossSigning()
    abody, bbody = acs.body(alice), bcs.body(bob)
    for user, body in ((alice, abody), (bob, bbody)):
        resp = await call(harness, "POST", "/keys/device_signing/upload", user, body)
        assert resp.status == 200, resp.json
    bob_since = (await sync(harness, bob))["next_batch"]
    carol_since = (await sync(harness, carol))["next_batch"]

    # Alice signs her device with her self-signing key, and her master key with her device.
    signed_device = acs.self_signing.sign(keys, alice.user_id)
    signed_master = alice_device.sign(
        abody["master_key"], alice.user_id, f"ed25519:{alice.device_id}"
    )
    upload = {alice.user_id: {alice.device_id: signed_device, acs.master.public: signed_master}}
    resp = await call(harness, "POST", "/keys/signatures/upload", alice, upload)
    assert resp.status == 200 and resp.json == {"failures": {}}, resp.json
    got = await _query(harness, carol, alice)
    sigs = got["device_keys"][alice.user_id][alice.device_id]["signatures"][alice.user_id]
    assert f"ed25519:{acs.self_signing.public}" in sigs and f"ed25519:{alice.device_id}" in sigs
    master_sigs = got["master_keys"][alice.user_id]["signatures"][alice.user_id]
    assert f"ed25519:{alice.device_id}" in master_sigs

    # Bob signs alice's master key with his user-signing key: only bob sees it.
    by_bob = bcs.user_signing.sign(abody["master_key"], bob.user_id)
    upload = {alice.user_id: {acs.master.public: by_bob}}
    resp = await call(harness, "POST", "/keys/signatures/upload", bob, upload)
    assert resp.status == 200 and resp.json == {"failures": {}}, resp.json
    seen_by_bob = (await _query(harness, bob, alice))["master_keys"][alice.user_id]["signatures"]
    assert f"ed25519:{bcs.user_signing.public}" in seen_by_bob[bob.user_id]
    seen_by_carol = (await _query(harness, carol, alice))["master_keys"][alice.user_id]
    assert bob.user_id not in seen_by_carol["signatures"]
    # Bob's sync names alice as changed (his signature), carol's too (alice's own).
    assert (
        alice.user_id
        in (await sync(harness, bob, f"?since={bob_since}"))["device_lists"]["changed"]
    )
    assert (
        alice.user_id
        in (await sync(harness, carol, f"?since={carol_since}"))["device_lists"]["changed"]
    )

    # Failures: bad signature, unknown device, unknown key, remote user, a changed object.
    forged = dict(by_bob)
    forged["signatures"] = {bob.user_id: {f"ed25519:{bcs.user_signing.public}": "AAAA"}}
    changed = dict(keys, algorithms=["other"])
    upload = {
        alice.user_id: {acs.master.public: forged, "bogus": by_bob},
        bob.user_id: {"NODEVICE": by_bob},
        "@x:elsewhere.example": {"DEV": by_bob},
    }
    resp = await call(harness, "POST", "/keys/signatures/upload", bob, upload)
    assert resp.status == 200
    failures = resp.json["failures"]
    assert failures[alice.user_id][acs.master.public]["errcode"] == "M_INVALID_SIGNATURE"
    assert failures[alice.user_id]["bogus"]["errcode"] == "M_NOT_FOUND"
    assert failures[bob.user_id]["NODEVICE"]["errcode"] == "M_NOT_FOUND"
    assert "DEV" in failures["@x:elsewhere.example"]
    upload = {alice.user_id: {alice.device_id: acs.self_signing.sign(changed, alice.user_id)}}
    resp = await call(harness, "POST", "/keys/signatures/upload", alice, upload)
    assert resp.json["failures"][alice.user_id][alice.device_id]["errcode"] == "M_BAD_JSON"
    resp = await call(harness, "POST", "/keys/signatures/upload", alice, {alice.user_id: []})
    assert resp.status == 400


NONSENSE: list[Any] = [None, True, 0, -1, 2**60, 1.5, "", "x", [], [1, "a"], [{}], {}, {"a": []}]


async def test_signatures_upload_nonsense_at_every_level(harness: Harness) -> None:
    """Whatever shape a level of the upload has, the answer is 200 with
    failures or a 400, never a 500, and nothing is stored."""
    alice = await make_user(harness, "alice")
    alice_device = Ed25519()
    keys = device_keys(alice, alice_device)
    assert (await call(harness, "POST", "/keys/upload", alice, {"device_keys": keys})).status == 200
    acs = CrossSigning()
    abody = acs.body(alice)
    resp = await call(harness, "POST", "/keys/device_signing/upload", alice, abody)
    assert resp.status == 200, resp.json
    signed_device = acs.self_signing.sign(keys, alice.user_id)
    me, device, master = alice.user_id, alice.device_id, acs.master.public
    sig_id = f"ed25519:{acs.self_signing.public}"

    def uploads(value: Any) -> list[Any]:
        signatures = signed_device["signatures"]
        return [
            value,
            {me: value},
            {"not a user": {device: signed_device}},
            {"@nobody:elsewhere": {master: value}},
            {me: {device: value}},
            {me: {master: value}},
            {me: {"unknown": value}},
            {me: {device: {**signed_device, "signatures": value}}},
            {me: {device: {**signed_device, "signatures": {me: value}}}},
            {me: {device: {**signed_device, "signatures": {me: {sig_id: value}}}}},
            {me: {device: {**signed_device, "keys": value, "signatures": signatures}}},
            {me: {device: {**signed_device, "extra": value}}},
            {me: {master: {**abody["master_key"], "keys": value}}},
        ]

    for value in NONSENSE:
        for body in uploads(value):
            resp = await call(harness, "POST", "/keys/signatures/upload", alice, body)
            assert resp.status in (200, 400), (body, resp.json)
            if resp.status == 200 and value != {}:
                assert resp.json["failures"], (body, resp.json)
    many = {me: {f"D{i}": signed_device for i in range(1001)}}
    resp = await call(harness, "POST", "/keys/signatures/upload", alice, many)
    assert (resp.status, resp.json["errcode"]) == (400, "M_BAD_JSON")
    got = await _query(harness, alice, alice)
    sigs = got["device_keys"][alice.user_id][alice.device_id]["signatures"][alice.user_id]
    assert sig_id not in sigs
