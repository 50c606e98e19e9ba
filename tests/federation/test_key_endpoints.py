"""`/_matrix/key/v2/server` and the notary's `/_matrix/key/v2/query`, over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from hamlet.core.crypto import generate_signing_key, verify_key_base64, verify_signed_json
from hamlet.handlers.federation.keyring import SERVER_KEYS_PATH
from hamlet.handlers.federation.notary import MAX_QUERY_KEY_IDS, MAX_QUERY_SERVERS
from tests.conftest import advance
from tests.federation.conftest import StartServers
from tests.support.federation import HarnessTransport

QUERY = "/_matrix/key/v2/query"


def _self_verifies(response: dict[str, Any], server_name: str) -> None:
    keys = {kid: k["key"] for kid, k in response["verify_keys"].items()}
    verify_signed_json(response, server_name, keys)


async def test_each_tenant_publishes_its_own_signed_keys(
    make_hs_config: Any, start_servers: StartServers
) -> None:
    old = generate_signing_key("old")
    h = await start_servers(
        make_hs_config("a.test"),
        make_hs_config(
            "b.test",
            key_refresh_interval="2h",
            old_signing_keys={old.key_id: {"key": verify_key_base64(old), "expired_ts": 1234}},
        ),
    )
    for name in ("a.test", "b.test"):
        hs = h.servers[name]
        resp = await h.request("GET", SERVER_KEYS_PATH, host=name)
        assert resp.status == 200, resp.body
        body = resp.json
        assert body["server_name"] == name
        assert body["verify_keys"] == {
            hs.signing_key.key_id: {"key": verify_key_base64(hs.signing_key)}
        }
        _self_verifies(body, name)
        legacy = await h.request("GET", f"{SERVER_KEYS_PATH}/{hs.signing_key.key_id}", host=name)
        assert legacy.json == body

    a = (await h.request("GET", SERVER_KEYS_PATH, host="a.test")).json
    b = (await h.request("GET", SERVER_KEYS_PATH, host="b.test")).json
    assert a["old_verify_keys"] == {}
    assert b["old_verify_keys"] == {old.key_id: {"key": verify_key_base64(old), "expired_ts": 1234}}
    now = h.servers["b.test"].clock.time_msec()
    assert now < b["valid_until_ts"] <= now + 2 * 3600 * 1000
    assert now < a["valid_until_ts"] <= now + 24 * 3600 * 1000


async def test_the_response_is_resigned_after_half_its_validity(
    make_hs_config: Any, start_servers: StartServers
) -> None:
    h = await start_servers(make_hs_config("a.test", key_refresh_interval="2h"))
    first = (await h.request("GET", SERVER_KEYS_PATH)).json
    await advance(1800)
    assert (await h.request("GET", SERVER_KEYS_PATH)).json == first
    await advance(1801)
    later = (await h.request("GET", SERVER_KEYS_PATH)).json
    assert later["valid_until_ts"] > first["valid_until_ts"]
    _self_verifies(later, "a.test")


async def test_notary_returns_keys_it_fetched_countersigned(
    make_hs_config: Any, start_servers: StartServers, transport: HarnessTransport
) -> None:
    h = await start_servers(make_hs_config("a.test"), make_hs_config("b.test"))
    a, b = h.servers["a.test"], h.servers["b.test"]
    a_key = a.keyring.local_key_response()
    key_id = a.signing_key.key_id
    body = {"server_keys": {"a.test": {key_id: {"minimum_valid_until_ts": 0}}}}
    resp = await h.request("POST", QUERY, json=body, host="b.test")
    assert resp.status == 200, resp.body
    (answer,) = resp.json["server_keys"]
    assert {k: v for k, v in answer.items() if k != "signatures"} == {
        k: v for k, v in a_key.items() if k != "signatures"
    }
    _self_verifies(answer, "a.test")
    verify_signed_json(answer, "b.test", {b.signing_key.key_id: verify_key_base64(b.signing_key)})

    single = await h.request("GET", f"{QUERY}/a.test", host="b.test")
    assert single.json == resp.json
    assert transport.count("GET", "a.test", SERVER_KEYS_PATH) == 1


async def test_notary_answers_for_itself_and_skips_the_unreachable(
    make_hs_config: Any, start_servers: StartServers
) -> None:
    h = await start_servers(make_hs_config("b.test"))
    body = {"server_keys": {"b.test": {}, "nowhere.test": {}}}
    resp = await h.request("POST", QUERY, json=body)
    assert resp.status == 200, resp.body
    (own,) = resp.json["server_keys"]
    assert own == h.hs.keyring.local_key_response()
    empty = await h.request("GET", f"{QUERY}/nowhere.test?minimum_valid_until_ts=5")
    assert (empty.status, empty.json) == (200, {"server_keys": []})


async def test_notary_refetches_after_half_the_lifetime(
    make_hs_config: Any, start_servers: StartServers, transport: HarnessTransport
) -> None:
    h = await start_servers(
        make_hs_config("a.test", key_refresh_interval="2h"), make_hs_config("b.test")
    )
    first = (await h.request("GET", f"{QUERY}/a.test", host="b.test")).json
    await advance(1800)
    assert (await h.request("GET", f"{QUERY}/a.test", host="b.test")).json == first
    assert transport.count("GET", "a.test") == 1
    await advance(1801)
    later = (await h.request("GET", f"{QUERY}/a.test", host="b.test")).json
    assert transport.count("GET", "a.test") == 2
    assert later["server_keys"][0]["valid_until_ts"] > first["server_keys"][0]["valid_until_ts"]


async def test_notary_serves_its_cache_while_the_origin_is_down(
    make_hs_config: Any, start_servers: StartServers, transport: HarnessTransport
) -> None:
    h = await start_servers(
        make_hs_config("a.test", key_refresh_interval="1h"), make_hs_config("b.test")
    )
    first = await h.request("GET", f"{QUERY}/a.test", host="b.test")
    (cached,) = first.json["server_keys"]
    transport.down.add("a.test")
    await advance(7200)
    # The cached keys have expired, so the notary tries again, and fails.
    later = await h.request("GET", f"{QUERY}/a.test", host="b.test")
    assert transport.count("GET", "a.test") == 2
    (answer,) = later.json["server_keys"]
    assert answer["valid_until_ts"] == cached["valid_until_ts"]


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        (
            {"server_keys": {f"s{i}.test": {} for i in range(MAX_QUERY_SERVERS + 1)}},
            "M_INVALID_PARAM",
        ),
        (
            {"server_keys": {"a.test": {f"ed25519:{i}": {} for i in range(MAX_QUERY_KEY_IDS + 1)}}},
            "M_INVALID_PARAM",
        ),
        ({"server_keys": {"not a server!": {}}}, "M_INVALID_PARAM"),
        ({"server_keys": []}, "M_BAD_JSON"),
        ({"server_keys": {"a.test": []}}, "M_BAD_JSON"),
        ({"server_keys": {"a.test": {"ed25519:x": 5}}}, "M_BAD_JSON"),
        (
            {"server_keys": {"a.test": {"ed25519:x": {"minimum_valid_until_ts": "soon"}}}},
            "M_BAD_JSON",
        ),
        ({}, "M_BAD_JSON"),
        ([], "M_BAD_JSON"),
    ],
)
async def test_bad_queries_are_refused(
    body: Any,
    errcode: str,
    make_hs_config: Any,
    start_servers: StartServers,
    transport: HarnessTransport,
) -> None:
    h = await start_servers(make_hs_config("b.test"))
    resp = await h.request("POST", QUERY, json=body)
    assert (resp.status, resp.json["errcode"]) == (400, errcode)
    assert transport.requests == []


async def test_bad_single_queries_are_refused(
    make_hs_config: Any, start_servers: StartServers
) -> None:
    h = await start_servers(make_hs_config("b.test"))
    resp = await h.request("GET", f"{QUERY}/a.test?minimum_valid_until_ts=soon")
    assert (resp.status, resp.json["errcode"]) == (400, "M_INVALID_PARAM")
    resp = await h.request("GET", f"{QUERY}/bad%20name")
    assert (resp.status, resp.json["errcode"]) == (400, "M_INVALID_PARAM")
    resp = await h.request("POST", QUERY, body=b"{not json")
    assert (resp.status, resp.json["errcode"]) == (400, "M_NOT_JSON")
