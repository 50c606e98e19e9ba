"""The keyring: two tenants of one harness fetching each other's real keys."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hamlet.core.crypto import (
    generate_signing_key,
    sign_json,
    verify_key_base64,
    write_signing_keys,
)
from hamlet.core.server_keys import MAX_KEY_VALIDITY_MS
from hamlet.handlers.federation.keyring import (
    MIN_BACKOFF_MS,
    QUERY_PATH,
    REFETCH_INTERVAL_MS,
    SERVER_KEYS_PATH,
    SignatureVerifyError,
)
from tests.conftest import advance
from tests.federation.conftest import StartServers
from tests.support.federation import HarnessTransport
from tests.support.harness import Harness


@pytest.fixture
async def two(make_hs_config: Any, start_servers: StartServers) -> Harness:
    return await start_servers(make_hs_config("a.test"), make_hs_config("b.test"))


async def test_fetches_once_then_answers_from_cache_and_storage(
    two: Harness, transport: HarnessTransport
) -> None:
    h = two
    a, b = h.servers["a.test"], h.servers["b.test"]
    key_id = b.signing_key.key_id
    now = a.clock.time_msec()

    keys = await a.keyring.get_verify_keys("b.test", [key_id], now)
    assert bytes(keys[key_id].key) == bytes(b.signing_key.verify_key)
    assert transport.count("GET", "b.test", SERVER_KEYS_PATH) == 1

    await a.keyring.get_verify_keys("b.test", [key_id], now)
    a.clear_caches()
    await a.keyring.get_verify_keys("b.test", [key_id], now)
    a = await h.restart("a.test")
    assert key_id in await a.keyring.get_verify_keys("b.test", [key_id], now)
    assert transport.count("GET", "b.test") == 1
    stored = await a.keyring.stored_response("b.test")
    assert stored is not None and stored.from_server == "b.test"
    assert stored.response == b.keyring.local_key_response()


async def test_own_keys_need_no_fetch(
    make_hs_config: Any, start_servers: StartServers, transport: HarnessTransport
) -> None:
    h = await start_servers(make_hs_config("a.test"))
    a = h.hs
    keys = await a.keyring.get_verify_keys("a.test", [], 2**52)
    assert list(keys) == [a.signing_key.key_id]
    assert transport.requests == []


async def test_refetches_once_valid_until_has_passed(
    make_hs_config: Any, start_servers: StartServers, transport: HarnessTransport
) -> None:
    h = await start_servers(
        make_hs_config("a.test"), make_hs_config("b.test", key_refresh_interval="1h")
    )
    a, b = h.servers["a.test"], h.servers["b.test"]
    key_id = b.signing_key.key_id
    first = await a.keyring.get_verify_keys("b.test", [key_id], a.clock.time_msec())
    assert transport.count("GET", "b.test") == 1

    await advance(1800)
    await a.keyring.get_verify_keys("b.test", [key_id], a.clock.time_msec())
    assert transport.count("GET", "b.test") == 1

    await advance(1801)
    again = await a.keyring.get_verify_keys("b.test", [key_id], a.clock.time_msec())
    assert transport.count("GET", "b.test") == 2
    assert again[key_id].valid_until_ts > first[key_id].valid_until_ts


async def test_validity_is_capped_at_seven_days(
    make_hs_config: Any, start_servers: StartServers
) -> None:
    h = await start_servers(
        make_hs_config("a.test"), make_hs_config("b.test", key_refresh_interval="30d")
    )
    a, b = h.servers["a.test"], h.servers["b.test"]
    now = a.clock.time_msec()
    keys = await a.keyring.get_verify_keys("b.test", [b.signing_key.key_id], now)
    assert keys[b.signing_key.key_id].valid_until_ts <= now + MAX_KEY_VALIDITY_MS + 1000
    assert await a.keyring.get_verify_keys("b.test", [], now + MAX_KEY_VALIDITY_MS * 2) == {}


async def test_concurrent_lookups_share_one_fetch(
    two: Harness, transport: HarnessTransport
) -> None:
    h = two
    a, b = h.servers["a.test"], h.servers["b.test"]
    key_id = b.signing_key.key_id
    now = a.clock.time_msec()
    results = await asyncio.gather(
        *(a.keyring.get_verify_keys("b.test", [key_id], now) for _ in range(10))
    )
    assert all(key_id in r for r in results)
    assert transport.count("GET", "b.test") == 1


async def test_old_keys_serve_events_sent_before_they_expired(
    make_hs_config: Any, start_servers: StartServers
) -> None:
    old = generate_signing_key("old")
    expired_ts = 1_700_000_000_000
    b_config = make_hs_config(
        "b.test",
        old_signing_keys={old.key_id: {"key": verify_key_base64(old), "expired_ts": expired_ts}},
    )
    h = await start_servers(make_hs_config("a.test"), b_config)
    a = h.servers["a.test"]
    keys = await a.keyring.get_verify_keys("b.test", [old.key_id], expired_ts - 1)
    assert bytes(keys[old.key_id].key) == bytes(old.verify_key)
    assert await a.keyring.get_verify_keys("b.test", [old.key_id], expired_ts + 1) == {}

    signed = sign_json({"what": "an old event"}, "b.test", old)
    await a.keyring.verify_json_for_server("b.test", signed, expired_ts - 1)
    with pytest.raises(SignatureVerifyError):
        await a.keyring.verify_json_for_server("b.test", signed, a.clock.time_msec())


def _bad_signature(dest: str, path: str, answer: Any) -> Any:
    return {**answer, "valid_until_ts": answer["valid_until_ts"] + 1}


def _huge(dest: str, path: str, answer: Any) -> Any:
    return {**answer, "padding": "x" * 20_000}


def _too_many_keys(dest: str, path: str, answer: Any) -> Any:
    key = next(iter(answer["verify_keys"].values()))
    extra = {f"ed25519:k{i}": {"key": key["key"], "expired_ts": 1} for i in range(40)}
    return {**answer, "old_verify_keys": extra}


BAD_ANSWERS = {
    "not signed by it": lambda d, p, a: {k: v for k, v in a.items() if k != "signatures"},
    "tampered": _bad_signature,
    "huge": _huge,
    "too many keys": _too_many_keys,
    "a list": lambda d, p, a: [a],
    "a string": lambda d, p, a: "keys",
    "no verify_keys": lambda d, p, a: {**a, "verify_keys": "none"},
    "bad key": lambda d, p, a: {**a, "verify_keys": {"ed25519:x": {"key": "!!"}}},
    "float validity": lambda d, p, a: {**a, "valid_until_ts": 1.5},
}


@pytest.mark.parametrize("bad", sorted(BAD_ANSWERS))
async def test_bad_answers_are_refused_and_backed_off(
    bad: str, make_hs_config: Any, start_servers: StartServers, transport: HarnessTransport
) -> None:
    h = await start_servers(make_hs_config("a.test"), make_hs_config("b.test"))
    a, b = h.servers["a.test"], h.servers["b.test"]
    key_id = b.signing_key.key_id
    transport.tamper = BAD_ANSWERS[bad]

    assert await a.keyring.get_verify_keys("b.test", [key_id], a.clock.time_msec()) == {}
    assert await a.keyring.stored_response("b.test") is None
    signed = sign_json({"x": 1}, "b.test", b.signing_key)
    with pytest.raises(SignatureVerifyError):
        await a.keyring.verify_json_for_server("b.test", signed, a.clock.time_msec())
    # The failure is remembered: nobody is asked again until the backoff passes.
    assert transport.count("GET", "b.test") == 1

    transport.tamper = None
    await advance(MIN_BACKOFF_MS / 1000 + 1)
    await a.keyring.verify_json_for_server("b.test", signed, a.clock.time_msec())
    assert transport.count("GET", "b.test") == 2


async def test_an_answer_for_another_server_is_refused(
    two: Harness, transport: HarnessTransport
) -> None:
    h = two
    a = h.servers["a.test"]
    # c.test answers with b.test's real, correctly signed keys.
    transport.aliases["c.test"] = "b.test"
    assert await a.keyring.get_verify_keys("c.test", [], a.clock.time_msec()) == {}
    assert await a.keyring.stored_response("c.test") is None


async def test_backoff_doubles_while_a_server_stays_down(
    make_hs_config: Any, start_servers: StartServers, transport: HarnessTransport
) -> None:
    h = await start_servers(make_hs_config("a.test"))
    a = h.hs
    for expected, wait_ms in ((1, 0), (2, MIN_BACKOFF_MS), (3, 2 * MIN_BACKOFF_MS)):
        await advance(wait_ms / 1000 + 0.5)
        await a.keyring.get_verify_keys("down.test", [], a.clock.time_msec())
        await a.keyring.get_verify_keys("down.test", [], a.clock.time_msec())
        assert transport.count("GET", "down.test") == expected


async def test_a_key_it_never_published_does_not_hammer_the_server(
    two: Harness, transport: HarnessTransport
) -> None:
    h = two
    a = h.servers["a.test"]
    for _ in range(5):
        await a.keyring.get_verify_keys("b.test", ["ed25519:never"], a.clock.time_msec())
    assert transport.count("GET", "b.test") == 1
    await advance(REFETCH_INTERVAL_MS / 1000 + 1)
    await a.keyring.get_verify_keys("b.test", ["ed25519:never"], a.clock.time_msec())
    assert transport.count("GET", "b.test") == 2


def _write_key(config: Any) -> Any:
    key = generate_signing_key()
    config.signing_key_path.write_text(write_signing_keys([key]))
    return key


@pytest.mark.parametrize("configured", [True, False])
async def test_keys_through_a_notary(
    configured: bool, make_hs_config: Any, start_servers: StartServers, transport: HarnessTransport
) -> None:
    """a.test trusts b.test as its notary and learns c.test's keys from it."""
    b_config = make_hs_config("b.test")
    b_key = _write_key(b_config)
    notary: dict[str, Any] = {"server_name": "b.test"}
    if configured:
        notary["verify_keys"] = {b_key.key_id: verify_key_base64(b_key)}
    a_config = make_hs_config("a.test", trusted_key_servers=[notary])
    h = await start_servers(a_config, b_config, make_hs_config("c.test"))
    a, c = h.servers["a.test"], h.servers["c.test"]

    keys = await a.keyring.get_verify_keys("c.test", [c.signing_key.key_id], a.clock.time_msec())
    assert bytes(keys[c.signing_key.key_id].key) == bytes(c.signing_key.verify_key)
    assert transport.count("POST", "b.test", QUERY_PATH) == 1
    # The notary fetched c.test's keys itself; a.test never asked c.test.
    assert transport.count("GET", "c.test") == 1
    # Without configured keys, the notary's own keys come from the notary.
    assert transport.count("GET", "b.test", SERVER_KEYS_PATH) == (0 if configured else 1)
    stored = await a.keyring.stored_response("c.test")
    assert stored is not None and stored.from_server == "b.test"
    assert set(stored.response["signatures"]) == {"b.test", "c.test"}


async def test_a_notary_with_the_wrong_key_is_passed_over_for_the_origin(
    make_hs_config: Any, start_servers: StartServers, transport: HarnessTransport
) -> None:
    wrong = generate_signing_key("b")
    notary = {"server_name": "b.test", "verify_keys": {wrong.key_id: verify_key_base64(wrong)}}
    h = await start_servers(
        make_hs_config("a.test", trusted_key_servers=[notary]),
        make_hs_config("b.test"),
        make_hs_config("c.test"),
    )
    a, c = h.servers["a.test"], h.servers["c.test"]
    keys = await a.keyring.get_verify_keys("c.test", [c.signing_key.key_id], a.clock.time_msec())
    assert c.signing_key.key_id in keys
    assert transport.count("POST", "b.test", QUERY_PATH) == 1
    stored = await a.keyring.stored_response("c.test")
    assert stored is not None and stored.from_server == "c.test"


NOTARY_GARBAGE = {
    "a list": lambda answer: [answer],
    "no server_keys": lambda answer: {},
    "too many": lambda answer: {"server_keys": answer["server_keys"] * 17},
    "unsigned by notary": lambda answer: {
        "server_keys": [
            {**r, "signatures": {"c.test": r["signatures"]["c.test"]}}
            for r in answer["server_keys"]
        ]
    },
}


@pytest.mark.parametrize("garbage", sorted(NOTARY_GARBAGE))
async def test_a_notary_answering_garbage_is_passed_over(
    garbage: str,
    make_hs_config: Any,
    start_servers: StartServers,
    transport: HarnessTransport,
) -> None:
    h = await start_servers(
        make_hs_config("a.test", trusted_key_servers=[{"server_name": "b.test"}]),
        make_hs_config("b.test"),
        make_hs_config("c.test"),
    )
    a, c = h.servers["a.test"], h.servers["c.test"]

    def tamper(dest: str, path: str, answer: Any) -> Any:
        return NOTARY_GARBAGE[garbage](answer) if path == QUERY_PATH else answer

    transport.tamper = tamper
    keys = await a.keyring.get_verify_keys("c.test", [c.signing_key.key_id], a.clock.time_msec())
    assert c.signing_key.key_id in keys
    stored = await a.keyring.stored_response("c.test")
    assert stored is not None and stored.from_server == "c.test"


async def test_too_many_signatures_are_refused_unfetched(
    two: Harness, transport: HarnessTransport
) -> None:
    a, b = two.servers["a.test"], two.servers["b.test"]
    signed = sign_json({"x": 1}, "b.test", b.signing_key)
    sig = signed["signatures"]["b.test"][b.signing_key.key_id]
    signed["signatures"]["b.test"] = {f"ed25519:k{i}": sig for i in range(9)}
    with pytest.raises(SignatureVerifyError):
        await a.keyring.verify_json_for_server("b.test", signed, a.clock.time_msec())
    assert transport.requests == []
