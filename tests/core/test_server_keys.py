"""Key responses and the servers an event must be signed by, as plain data."""

from __future__ import annotations

from typing import Any

import pytest

from hamlet.core.crypto import generate_signing_key, sign_json, verify_key_base64
from hamlet.core.errors import SignatureError
from hamlet.core.event_signatures import key_validity_needed, required_signers
from hamlet.core.room_versions import get_room_version
from hamlet.core.server_keys import (
    MAX_KEY_VALIDITY_MS,
    KeyResponseError,
    OldKey,
    build_key_response,
    parse_key_response,
)

KEY = generate_signing_key("current")
OLD = generate_signing_key("old")
NOW = 1_700_000_000_000


def _response(valid_until: int = NOW + 3600_000) -> dict[str, Any]:
    old = (OldKey(OLD.key_id, verify_key_base64(OLD), NOW - 5),)
    return build_key_response("hs.test", KEY, old, valid_until)


def test_round_trip() -> None:
    keys = parse_key_response(_response(), "hs.test", NOW)
    assert keys.valid_until_ts == NOW + 3600_000
    assert bytes(keys.keys[KEY.key_id].key) == bytes(KEY.verify_key)
    assert keys.keys[KEY.key_id].expired_ts is None
    assert (keys.keys[OLD.key_id].valid_until_ts, keys.keys[OLD.key_id].expired_ts) == (
        NOW - 5,
        NOW - 5,
    )


def test_validity_is_capped_at_seven_days() -> None:
    keys = parse_key_response(_response(NOW + 10 * MAX_KEY_VALIDITY_MS), "hs.test", NOW)
    assert keys.keys[KEY.key_id].valid_until_ts == NOW + MAX_KEY_VALIDITY_MS
    # ...but the response itself is kept as received.
    assert keys.response["valid_until_ts"] == NOW + 10 * MAX_KEY_VALIDITY_MS


def test_other_algorithms_are_skipped() -> None:
    raw = _response()
    unsigned = {k: v for k, v in raw.items() if k != "signatures"}
    unsigned["verify_keys"] = {**raw["verify_keys"], "curve9:x": {"key": "whatever"}}
    keys = parse_key_response(sign_json(unsigned, "hs.test", KEY), "hs.test", NOW)
    assert set(keys.keys) == {KEY.key_id, OLD.key_id}


def test_an_old_key_cannot_sign_the_response() -> None:
    raw = {k: v for k, v in _response().items() if k != "signatures"}
    with pytest.raises(KeyResponseError, match="not signed"):
        parse_key_response(sign_json(raw, "hs.test", OLD), "hs.test", NOW)


@pytest.mark.parametrize(
    "change",
    [
        {"server_name": "other.test"},
        {"valid_until_ts": -1},
        {"valid_until_ts": True},
        {"verify_keys": {"ed25519:bad id": {"key": "x"}}},
        {"old_verify_keys": {OLD.key_id: {"key": verify_key_base64(OLD)}}},
        {"verify_keys": {KEY.key_id: {"key": "AAAA"}}},
        {"verify_keys": {KEY.key_id: "key"}},
        {"verify_keys": []},
        {"signatures": {}},
        {"padding": [1.5]},
    ],
)
def test_malformed_responses(change: dict[str, Any]) -> None:
    with pytest.raises(KeyResponseError):
        parse_key_response({**_response(), **change}, "hs.test", NOW)


def _pdu(**fields: Any) -> dict[str, Any]:
    return {"type": "m.room.message", "sender": "@u:s.test", "content": {}, **fields}


def test_required_signers_per_room_version() -> None:
    v1, v3, v8 = (get_room_version(v) for v in ("1", "3", "8"))
    assert required_signers(_pdu(event_id="$x:e.test"), v1) == {"s.test", "e.test"}
    assert required_signers(_pdu(event_id="$x:e.test"), v3) == {"s.test"}
    join = _pdu(
        type="m.room.member",
        content={"membership": "join", "join_authorised_via_users_server": "@a:auth.test"},
    )
    assert required_signers(join, v8) == {"s.test", "auth.test"}
    assert required_signers(join, get_room_version("7")) == {"s.test"}
    invite = _pdu(
        type="m.room.member",
        content={"membership": "invite", "third_party_invite": {"signed": {}}},
    )
    assert required_signers(invite, v8) == set()
    with pytest.raises(SignatureError):
        required_signers(_pdu(sender="nobody"), v8)
    with pytest.raises(SignatureError):
        required_signers(_pdu(), v1)


def test_key_validity_from_v5() -> None:
    assert key_validity_needed(_pdu(origin_server_ts=5), get_room_version("4")) == 0
    assert key_validity_needed(_pdu(origin_server_ts=5), get_room_version("5")) == 5
    with pytest.raises(SignatureError):
        key_validity_needed(_pdu(origin_server_ts=-1), get_room_version("10"))
