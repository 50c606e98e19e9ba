"""Which servers must sign a received event, checked with keys fetched from real tenants."""

from __future__ import annotations

from typing import Any

import pytest

from hamlet.core.crypto import SigningKey
from hamlet.core.events import add_hashes_and_signatures
from hamlet.core.room_versions import get_room_version
from hamlet.handlers.federation.keyring import SignatureVerifyError
from hamlet.homeserver import HomeServer
from tests.federation.conftest import StartServers
from tests.support.harness import Harness


def _pdu(version: str, *, ts: int, sender: str = "@u:b.test", **fields: Any) -> dict[str, Any]:
    pdu: dict[str, Any] = {
        "room_id": "!room:b.test",
        "sender": sender,
        "type": "m.room.message",
        "content": {"body": "hello"},
        "depth": 3,
        "prev_events": [],
        "auth_events": [],
        "origin_server_ts": ts,
        **fields,
    }
    if get_room_version(version).include_origin:
        pdu.setdefault("origin", "b.test")
    return pdu


def _sign(pdu: dict[str, Any], version: str, *servers: HomeServer) -> dict[str, Any]:
    for hs in servers:
        key: SigningKey = hs.signing_key
        pdu = add_hashes_and_signatures(pdu, get_room_version(version), hs.server_name, key)
    return pdu


@pytest.fixture
async def h(make_hs_config: Any, start_servers: StartServers) -> Harness:
    return await start_servers(
        make_hs_config("a.test"),
        make_hs_config("b.test", key_refresh_interval="1h"),
        make_hs_config("c.test"),
    )


async def _check(h: Harness, pdu: dict[str, Any], version: str) -> None:
    await h.servers["a.test"].keyring.verify_event_signatures(pdu, get_room_version(version))


async def _refused(h: Harness, pdu: dict[str, Any], version: str) -> None:
    with pytest.raises(SignatureVerifyError) as info:
        await _check(h, pdu, version)
    assert (info.value.status, info.value.errcode) == (401, "M_UNAUTHORIZED")


@pytest.mark.parametrize("version", ["3", "6", "10", "11", "12"])
async def test_the_senders_server_must_sign(h: Harness, version: str) -> None:
    b, c = h.servers["b.test"], h.servers["c.test"]
    ts = b.clock.time_msec()
    await _check(h, _sign(_pdu(version, ts=ts), version, b), version)
    await _refused(h, _sign(_pdu(version, ts=ts), version, c), version)
    await _refused(h, _pdu(version, ts=ts, hashes={"sha256": "x"}, signatures={}), version)
    # The signature covers the redacted event: what redaction keeps cannot change.
    signed = _sign(_pdu(version, ts=ts), version, b)
    await _refused(h, {**signed, "type": "m.room.topic"}, version)


@pytest.mark.parametrize("version", ["1", "2"])
async def test_v1_v2_the_event_id_server_must_sign_too(h: Harness, version: str) -> None:
    b, c = h.servers["b.test"], h.servers["c.test"]
    pdu = _pdu(version, ts=b.clock.time_msec(), event_id="$abc:c.test")
    await _refused(h, _sign(pdu, version, b), version)
    await _check(h, _sign(pdu, version, b, c), version)
    await _check(h, _sign({**pdu, "event_id": "$abc:b.test"}, version, b), version)


def _join(version: str, ts: int, content: dict[str, Any]) -> dict[str, Any]:
    return _pdu(
        version,
        ts=ts,
        type="m.room.member",
        state_key="@u:b.test",
        content={"membership": "join", **content},
    )


@pytest.mark.parametrize("version", ["8", "9", "10", "12"])
async def test_restricted_joins_need_the_authorising_server(h: Harness, version: str) -> None:
    b, c = h.servers["b.test"], h.servers["c.test"]
    pdu = _join(version, b.clock.time_msec(), {"join_authorised_via_users_server": "@admin:c.test"})
    await _refused(h, _sign(pdu, version, b), version)
    await _check(h, _sign(pdu, version, b, c), version)


async def test_before_restricted_rooms_the_authoriser_is_not_asked(h: Harness) -> None:
    b = h.servers["b.test"]
    pdu = _join("7", b.clock.time_msec(), {"join_authorised_via_users_server": "@admin:c.test"})
    await _check(h, _sign(pdu, "7", b), "7")


async def test_third_party_invites_need_no_sender_signature(h: Harness) -> None:
    b = h.servers["b.test"]
    invite = _pdu(
        "10",
        ts=b.clock.time_msec(),
        sender="@inviter:nowhere.test",
        type="m.room.member",
        state_key="@u:b.test",
        content={"membership": "invite", "third_party_invite": {"signed": {}}},
    )
    await _check(h, _sign(invite, "10", b), "10")
    plain = {**invite, "content": {"membership": "invite"}}
    await _refused(h, _sign(plain, "10", b), "10")


async def test_keys_must_be_valid_when_sent_from_v5(h: Harness) -> None:
    b = h.servers["b.test"]
    # b.test's keys are published as valid for an hour.
    later = b.clock.time_msec() + 2 * 3600 * 1000
    for version in ("4", "5", "10"):
        pdu = _sign(_pdu(version, ts=later), version, b)
        if version == "4":
            await _check(h, pdu, version)
        else:
            await _refused(h, pdu, version)


async def test_malformed_senders_are_refused_not_crashed(h: Harness) -> None:
    b = h.servers["b.test"]
    pdu = _sign(_pdu("10", ts=b.clock.time_msec()), "10", b)
    for sender in ("no-domain", 42, None):
        await _refused(h, {**pdu, "sender": sender}, "10")
    await _refused(h, {**pdu, "origin_server_ts": "soon"}, "10")
