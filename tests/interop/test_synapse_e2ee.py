"""End-to-end encryption across servers with a real Synapse 1.163.2: each
side's users query and claim the other side's keys, to-device messages go
both ways, and a new device on one side shows in the other side's device
list changes."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hamlet.homeserver import HomeServer
from tests.e2e.helpers import Ed25519, sign_device_keys
from tests.interop import test_synapse_transport as transport_tests
from tests.interop.synapse import Synapse
from tests.interop.test_synapse_transport import HamletServer, eventually

# The Hamlet tenant on a TLS federation listener that the transport tests use.
hamlet_tls = transport_tests.hamlet_tls
hamlet = transport_tests.hamlet

V3 = "/_matrix/client/v3"
#: A new timeout for each /sync of Synapse's (see `synapse_sync`).
SYNC_TIMEOUTS_MS = itertools.count(1)


@dataclass
class SynapseUser:
    user_id: str
    device_id: str
    token: str


def on_synapse(
    synapse: Synapse, method: str, path: str, body: Any = None, token: str | None = None
) -> Any:
    return asyncio.to_thread(synapse.client, method, V3 + path, body, token)


async def synapse_user(synapse: Synapse, name: str) -> SynapseUser:
    status, reg = await on_synapse(
        synapse,
        "POST",
        "/register",
        {"username": name, "password": "interop-pw-1", "auth": {"type": "m.login.dummy"}},
    )
    assert status == 200, reg
    return SynapseUser(reg["user_id"], reg["device_id"], reg["access_token"])


async def synapse_sync(synapse: Synapse, user: SynapseUser, since: str | None = None) -> Any:
    """A /sync of Synapse's: each with another timeout, since Synapse answers a
    repeated request (the same since, timeout and filter) from a cache."""
    path = f"/sync?timeout={next(SYNC_TIMEOUTS_MS)}"
    if since is not None:
        path += f"&since={quote(since)}"
    status, page = await on_synapse(synapse, "GET", path, None, user.token)
    assert status == 200, page
    return page


async def synapse_login(synapse: Synapse, user: SynapseUser) -> SynapseUser:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user.user_id},
        "password": "interop-pw-1",
    }
    status, login = await on_synapse(synapse, "POST", "/login", body)
    assert status == 200, login
    return SynapseUser(user.user_id, login["device_id"], login["access_token"])


def keys_body(user_id: str, device_id: str, signer: Ed25519, otks: int) -> dict[str, Any]:
    otk = {
        f"signed_curve25519:k{i}": signer.sign(
            {"key": f"otk{i}{secrets.token_hex(4)}"}, user_id, f"ed25519:{device_id}"
        )
        for i in range(otks)
    }
    return {"device_keys": sign_device_keys(user_id, device_id, signer), "one_time_keys": otk}


async def hamlet_device(hs: HomeServer, user_id: str, otks: int = 2) -> str:
    login = await hs.registration.create_login(user_id, None, None)
    device_id: str = login["device_id"]
    await hs.e2e_keys.upload_keys(
        user_id, device_id, keys_body(user_id, device_id, Ed25519(), otks)
    )
    return device_id


async def test_keys_and_to_device_both_ways(hamlet: HamletServer, synapse: Synapse) -> None:
    hs = hamlet.hs
    hs.federation_sender.attach_transport(hs.federation_client)
    suffix = secrets.token_hex(4)
    sy = await synapse_user(synapse, f"kim{suffix}")
    body = keys_body(sy.user_id, sy.device_id, Ed25519(), 2)
    status, uploaded = await on_synapse(synapse, "POST", "/keys/upload", body, sy.token)
    assert status == 200, uploaded
    ham = await hs.registration.register_user(f"hal{suffix}")
    ham_device = await hamlet_device(hs, ham)

    # Hamlet asks Synapse.
    got = await hs.e2e_keys.query_keys(ham, {sy.user_id: []})
    assert got["failures"] == {}
    assert got["device_keys"][sy.user_id][sy.device_id]["keys"] == body["device_keys"]["keys"]
    claimed = await hs.e2e_keys.claim_keys({sy.user_id: {sy.device_id: "signed_curve25519"}})
    assert claimed["failures"] == {}
    ((key_id, _key),) = claimed["one_time_keys"][sy.user_id][sy.device_id].items()
    assert key_id.startswith("signed_curve25519:k")

    # Synapse asks Hamlet.
    query: dict[str, Any] = {"device_keys": {ham: []}}
    status, theirs = await on_synapse(synapse, "POST", "/keys/query", query, sy.token)
    assert status == 200, theirs
    assert theirs["failures"] == {}
    assert list(theirs["device_keys"][ham]) == [ham_device]
    claim = {"one_time_keys": {ham: {ham_device: "signed_curve25519"}}}
    status, theirs = await on_synapse(synapse, "POST", "/keys/claim", claim, sy.token)
    assert status == 200, theirs
    assert theirs["failures"] == {}
    assert len(theirs["one_time_keys"][ham][ham_device]) == 1

    # To-device, Hamlet to Synapse.
    messages = {sy.user_id: {sy.device_id: {"hello": "from hamlet"}}}
    await hs.to_device.send(ham, ham_device, "t1", "m.interop", messages)

    async def synapse_inbox() -> list[str]:
        page = await synapse_sync(synapse, sy)
        return [str(e["content"]) for e in page.get("to_device", {}).get("events", [])]

    assert await eventually(synapse_inbox, lambda got: "{'hello': 'from hamlet'}" in got)

    # And Synapse to Hamlet.
    body = {"messages": {ham: {ham_device: {"hello": "from synapse"}}}}
    status, sent = await on_synapse(synapse, "PUT", "/sendToDevice/m.interop/s1", body, sy.token)
    assert status == 200, sent

    async def hamlet_inbox() -> list[str]:
        events, _pos = await hs.to_device.get_updates(ham, ham_device, 0)
        return [str(e["content"]) for e in events if e["sender"] == sy.user_id]

    assert await eventually(hamlet_inbox, lambda got: got == ["{'hello': 'from synapse'}"])


async def test_device_list_changes_cross(hamlet: HamletServer, synapse: Synapse) -> None:
    hs = hamlet.hs
    hs.federation_sender.attach_transport(hs.federation_client)
    suffix = secrets.token_hex(4)
    sy = await synapse_user(synapse, f"lee{suffix}")
    status, made = await on_synapse(
        synapse,
        "POST",
        "/createRoom",
        {"preset": "public_chat", "room_alias_name": f"e2ee{suffix}", "room_version": "10"},
        sy.token,
    )
    assert status == 200, made
    ham = await hs.registration.register_user(f"max{suffix}")
    await hamlet_device(hs, ham)
    located = await hs.federation_joins.locate(f"#e2ee{suffix}:{synapse.server_name}", [])
    assert located is not None
    await hs.federation_joins.join(ham, *located)
    # Each side has the other's list (Synapse caches ours now they share a room).
    assert (await hs.e2e_keys.query_keys(ham, {sy.user_id: []}))["failures"] == {}
    first = await synapse_sync(synapse, sy)
    status, theirs = await on_synapse(
        synapse, "POST", "/keys/query", {"device_keys": {ham: []}}, sy.token
    )
    assert status == 200 and theirs["failures"] == {}, theirs
    since = hs.notifier.current_token()

    # A new device on Synapse: Hamlet's users see the change.
    sy2 = await synapse_login(synapse, sy)
    body = keys_body(sy.user_id, sy2.device_id, Ed25519(), 0)
    status, uploaded = await on_synapse(synapse, "POST", "/keys/upload", body, sy2.token)
    assert status == 200, uploaded

    async def changed_here() -> list[str]:
        changes = await hs.device_lists.get_changes(ham, since, hs.notifier.current_token())
        return sorted(changes.changed)

    assert await eventually(changed_here, lambda users: sy.user_id in users)

    async def devices_here() -> list[str]:
        got = await hs.e2e_keys.query_keys(ham, {sy.user_id: []})
        return sorted(got["device_keys"].get(sy.user_id, {}))

    assert await eventually(devices_here, lambda ids: sy2.device_id in ids)

    # A new device on Hamlet: Synapse's user sees the change.
    new_device = await hamlet_device(hs, ham, otks=0)

    async def changed_there() -> list[str]:
        page = await synapse_sync(synapse, sy, first["next_batch"])
        return list(page.get("device_lists", {}).get("changed", []))

    assert await eventually(changed_there, lambda users: ham in users)

    async def devices_there() -> list[str]:
        status, got = await on_synapse(
            synapse, "POST", "/keys/query", {"device_keys": {ham: []}}, sy.token
        )
        assert status == 200, got
        return sorted(got["device_keys"].get(ham, {}))

    assert await eventually(devices_there, lambda ids: new_device in ids)
