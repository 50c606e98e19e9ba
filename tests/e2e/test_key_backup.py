"""Server-side key backup: /room_keys/version and /room_keys/keys."""

from __future__ import annotations

from typing import Any

from tests.e2e.helpers import call
from tests.support.harness import Harness
from tests.support.users import make_user

ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
ROOM = "!room:test.local"


def key(first: int, forwarded: int, verified: bool, tag: str) -> dict[str, Any]:
    return {
        "first_message_index": first,
        "forwarded_count": forwarded,
        "is_verified": verified,
        "session_data": {"ephemeral": tag, "ciphertext": tag, "mac": tag},
    }


async def test_versions(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    resp = await call(harness, "GET", "/room_keys/version", alice)
    assert resp.status == 404 and resp.json["errcode"] == "M_NOT_FOUND"
    auth_data = {"public_key": "abc", "signatures": {}}
    resp = await call(
        harness,
        "POST",
        "/room_keys/version",
        alice,
        {"algorithm": ALGORITHM, "auth_data": auth_data},
    )
    assert resp.status == 200 and resp.json == {"version": "1"}
    resp = await call(harness, "GET", "/room_keys/version", alice)
    assert resp.status == 200
    assert resp.json == {
        "algorithm": ALGORITHM,
        "auth_data": auth_data,
        "count": 0,
        "etag": "0",
        "version": "1",
    }
    # Versions are per user.
    assert (await call(harness, "GET", "/room_keys/version", bob)).status == 404
    assert (await call(harness, "GET", "/room_keys/version/1", bob)).status == 404

    # Update auth_data; the algorithm and the version in the body must match.
    new_auth = {"public_key": "def"}
    body = {"algorithm": ALGORITHM, "auth_data": new_auth, "version": "1"}
    assert (await call(harness, "PUT", "/room_keys/version/1", alice, body)).json == {}
    assert (await call(harness, "GET", "/room_keys/version/1", alice)).json["auth_data"] == new_auth
    resp = await call(harness, "PUT", "/room_keys/version/1", alice, {**body, "version": "2"})
    assert resp.status == 400
    resp = await call(harness, "PUT", "/room_keys/version/1", alice, {**body, "algorithm": "x"})
    assert resp.status == 400
    resp = await call(harness, "PUT", "/room_keys/version/7", alice, {**body, "version": "7"})
    assert resp.status == 404
    # Malformed bodies and versions.
    for bad in (
        {},
        {"algorithm": ALGORITHM},
        {"algorithm": 1, "auth_data": {}},
        {"algorithm": ALGORITHM, "auth_data": []},
    ):
        assert (await call(harness, "POST", "/room_keys/version", alice, bad)).status == 400
    for version in ("abc", "99", "-1"):
        assert (await call(harness, "GET", f"/room_keys/version/{version}", alice)).status == 404

    # A second version becomes current; deleting it makes the first current again.
    resp = await call(
        harness, "POST", "/room_keys/version", alice, {"algorithm": ALGORITHM, "auth_data": {}}
    )
    assert resp.json == {"version": "2"}
    assert (await call(harness, "GET", "/room_keys/version", alice)).json["version"] == "2"
    assert (await call(harness, "DELETE", "/room_keys/version/2", alice)).status == 200
    assert (await call(harness, "GET", "/room_keys/version/2", alice)).status == 404
    assert (await call(harness, "DELETE", "/room_keys/version/2", alice)).status == 404
    assert (await call(harness, "GET", "/room_keys/version", alice)).json["version"] == "1"
    # Version numbers are never reused.
    resp = await call(
        harness, "POST", "/room_keys/version", alice, {"algorithm": ALGORITHM, "auth_data": {}}
    )
    assert resp.json == {"version": "3"}
    # DELETE without a version deletes the current one.
    assert (await call(harness, "DELETE", "/room_keys/version", alice)).status == 200
    assert (await call(harness, "GET", "/room_keys/version", alice)).json["version"] == "1"
    assert (await call(harness, "GET", "/room_keys/version", None)).status == 401


async def test_keys_and_replacement(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    v1 = (
        await call(
            harness, "POST", "/room_keys/version", alice, {"algorithm": ALGORITHM, "auth_data": {}}
        )
    ).json["version"]
    # No keys in an empty backup.
    resp = await call(harness, "GET", f"/room_keys/keys?version={v1}", alice)
    assert resp.status == 200 and resp.json == {"rooms": {}}
    resp = await call(harness, "GET", f"/room_keys/keys/{ROOM}?version={v1}", alice)
    assert resp.json == {"sessions": {}}
    resp = await call(harness, "GET", f"/room_keys/keys/{ROOM}/s1?version={v1}", alice)
    assert resp.status == 404

    # Upload at all three levels.
    body = {
        "rooms": {ROOM: {"sessions": {"s1": key(5, 1, False, "a"), "s2": key(0, 0, True, "b")}}}
    }
    resp = await call(harness, "PUT", f"/room_keys/keys?version={v1}", alice, body)
    assert resp.status == 200 and resp.json == {"etag": "1", "count": 2}
    resp = await call(
        harness,
        "PUT",
        f"/room_keys/keys/!other:x?version={v1}",
        alice,
        {"sessions": {"s3": key(0, 0, False, "c")}},
    )
    assert resp.json == {"etag": "2", "count": 3}
    resp = await call(
        harness, "PUT", f"/room_keys/keys/!other:x/s4?version={v1}", alice, key(0, 0, False, "d")
    )
    assert resp.json == {"etag": "3", "count": 4}
    resp = await call(harness, "GET", f"/room_keys/keys?version={v1}", alice)
    assert resp.json["rooms"][ROOM]["sessions"]["s1"] == key(5, 1, False, "a")
    assert sorted(resp.json["rooms"]["!other:x"]["sessions"]) == ["s3", "s4"]
    version = (await call(harness, "GET", "/room_keys/version", alice)).json
    assert version["count"] == 4 and version["etag"] == "3"

    path = f"/room_keys/keys/{ROOM}/s1?version={v1}"

    async def offer(candidate: dict[str, Any]) -> dict[str, Any]:
        resp = await call(harness, "PUT", path, alice, candidate)
        assert resp.status == 200, resp.json
        got: dict[str, Any] = (await call(harness, "GET", path, alice)).json
        return got

    # Stored: (first 5, fwd 1, unverified). Worse offers change nothing (not the etag either).
    assert await offer(key(6, 0, False, "worse-index")) == key(5, 1, False, "a")
    assert await offer(key(5, 2, False, "worse-fwd")) == key(5, 1, False, "a")
    assert (await call(harness, "GET", "/room_keys/version", alice)).json["etag"] == "3"
    # Same verification: a lower first_message_index wins, then a lower forwarded_count.
    assert await offer(key(5, 0, False, "less-fwd")) == key(5, 0, False, "less-fwd")
    assert await offer(key(3, 9, False, "lower-index")) == key(3, 9, False, "lower-index")
    # A verified key beats an unverified one whatever its index...
    assert await offer(key(10, 9, True, "verified")) == key(10, 9, True, "verified")
    # ...and an unverified one never replaces a verified one.
    assert await offer(key(0, 0, False, "unverified")) == key(10, 9, True, "verified")
    assert await offer(key(2, 9, True, "verified-lower")) == key(2, 9, True, "verified-lower")
    assert (await call(harness, "GET", "/room_keys/version", alice)).json["count"] == 4

    # Wrong version: 403 with the current one; unknown versions: 404.
    v2 = (
        await call(
            harness, "POST", "/room_keys/version", alice, {"algorithm": ALGORITHM, "auth_data": {}}
        )
    ).json["version"]
    resp = await call(harness, "PUT", f"/room_keys/keys?version={v1}", alice, body)
    assert resp.status == 403
    assert resp.json["errcode"] == "M_WRONG_ROOM_KEYS_VERSION"
    assert resp.json["current_version"] == v2
    resp = await call(harness, "PUT", "/room_keys/keys?version=99", alice, body)
    assert resp.status == 403 and resp.json["current_version"] == v2
    assert (await call(harness, "GET", "/room_keys/keys?version=99", alice)).status == 404
    assert (await call(harness, "DELETE", "/room_keys/keys?version=99", alice)).status == 404
    resp = await call(harness, "GET", "/room_keys/keys", alice)
    assert resp.status == 400 and resp.json["errcode"] == "M_MISSING_PARAM"
    # The old version can still be read and deleted from.
    resp = await call(harness, "GET", f"/room_keys/keys/!other:x?version={v1}", alice)
    assert sorted(resp.json["sessions"]) == ["s3", "s4"]

    # Malformed keys: 400.
    for bad in (
        {"rooms": []},
        {"rooms": {ROOM: {"sessions": []}}},
        {"rooms": {ROOM: {"sessions": {"s": {**key(0, 0, False, "x"), "is_verified": "yes"}}}}},
        {
            "rooms": {
                ROOM: {"sessions": {"s": {**key(0, 0, False, "x"), "first_message_index": -1}}}
            }
        },
        {"rooms": {ROOM: {"sessions": {"s": {**key(0, 0, False, "x"), "session_data": "x"}}}}},
    ):
        resp = await call(harness, "PUT", f"/room_keys/keys?version={v2}", alice, bad)
        assert resp.status == 400, bad

    # Deleting: a session, a room, everything.
    resp = await call(harness, "DELETE", f"/room_keys/keys/!other:x/s3?version={v1}", alice)
    assert resp.json == {"etag": "8", "count": 3}  # 4 replacements since "3"
    resp = await call(harness, "DELETE", f"/room_keys/keys/!other:x?version={v1}", alice)
    assert resp.json["count"] == 2
    resp = await call(harness, "DELETE", f"/room_keys/keys?version={v1}", alice)
    assert resp.json["count"] == 0
    assert (await call(harness, "GET", f"/room_keys/keys?version={v1}", alice)).json == {
        "rooms": {}
    }
    # Deleting a version deletes its keys.
    await call(harness, "PUT", f"/room_keys/keys?version={v2}", alice, body)
    assert (await call(harness, "DELETE", f"/room_keys/version/{v2}", alice)).status == 200
    assert (await call(harness, "GET", f"/room_keys/keys?version={v2}", alice)).status == 404
    resp = await call(harness, "PUT", f"/room_keys/keys?version={v1}", alice, body)
    assert resp.status == 200 and resp.json["count"] == 2
