"""Synapse config keys users carry over: alias_creation_rules,
room_list_publication_rules, rc_room_creation, rc_presence, rc_profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from hamlet.config import ConfigError, validate_config
from tests.accounts.conftest import MakeConfig
from tests.conftest import advance, time_stands_still
from tests.support.harness import Harness, Response, start_harness
from tests.support.users import TestUser, make_user

V3 = "/_matrix/client/v3"
GENEROUS = {"per_second": 100, "burst_count": 1000}


async def _start(make_hs_config: MakeConfig, **config: Any) -> Harness:
    return await start_harness([make_hs_config(rc_message=GENEROUS, **config)])


async def _create(h: Harness, user: TestUser, **body: Any) -> Response:
    return await h.request("POST", f"{V3}/createRoom", json=body, token=user.token)


async def _public_room_ids(h: Harness, user: TestUser) -> set[str]:
    resp = await h.request("GET", f"{V3}/publicRooms", token=user.token)
    return {r["room_id"] for r in resp.json["chunk"]}


async def test_alias_creation_rules_decide_who_makes_which_alias(
    make_hs_config: MakeConfig,
) -> None:
    rules = [
        {"user_id": "@boss:*", "alias": "#official*", "action": "allow"},
        {"alias": "#official*", "action": "deny"},
        {"action": "allow"},
    ]
    h = await _start(make_hs_config, alias_creation_rules=rules)
    try:
        boss = await make_user(h, "boss")
        alice = await make_user(h, "alice")
        room = (await _create(h, alice)).json["room_id"]
        server = h.hs.server_name

        async def put_alias(user: TestUser, alias: str) -> Response:
            path = f"{V3}/directory/room/{quote(alias)}"
            return await h.request("PUT", path, json={"room_id": room}, token=user.token)

        refused = await put_alias(alice, f"#OFFICIAL-news:{server}")
        assert (refused.status, refused.json["errcode"]) == (403, "M_FORBIDDEN")
        assert (await put_alias(alice, f"#alice-news:{server}")).status == 200
        before = await h.request("GET", f"{V3}/joined_rooms", token=alice.token)
        refused = await _create(h, alice, room_alias_name="official-chat")
        assert refused.status == 403
        # Refused before anything was made.
        after = await h.request("GET", f"{V3}/joined_rooms", token=alice.token)
        assert after.json == before.json
        made = await _create(h, boss, room_alias_name="official-chat")
        assert made.status == 200 and made.json["room_alias"] == f"#official-chat:{server}"
    finally:
        await h.close()


async def test_room_list_publication_rules(make_hs_config: MakeConfig) -> None:
    rules = [{"user_id": "@boss:*", "action": "allow"}, {"alias": "#open-*", "action": "allow"}]
    h = await _start(make_hs_config, room_list_publication_rules=rules)
    try:
        boss = await make_user(h, "boss")
        alice = await make_user(h, "alice")
        # Refused publication still makes the room, unpublished (as Synapse).
        made = await _create(h, alice, visibility="public", preset="public_chat")
        assert made.status == 200
        room = made.json["room_id"]
        assert room not in await _public_room_ids(h, alice)
        path = f"{V3}/directory/list/room/{room}"
        refused = await h.request("PUT", path, json={"visibility": "public"}, token=alice.token)
        assert (refused.status, refused.json["errcode"]) == (403, "M_FORBIDDEN")
        # An alias the rules name lets it through.
        alias = f"#open-room:{h.hs.server_name}"
        resp = await h.request(
            "PUT", f"{V3}/directory/room/{quote(alias)}", json={"room_id": room}, token=alice.token
        )
        assert resp.status == 200
        resp = await h.request("PUT", path, json={"visibility": "public"}, token=alice.token)
        assert resp.status == 200
        boss_room = await _create(h, boss, visibility="public", preset="public_chat")
        assert {room, boss_room.json["room_id"]} <= await _public_room_ids(h, alice)
    finally:
        await h.close()


async def test_an_empty_rule_list_refuses_everyone(make_hs_config: MakeConfig) -> None:
    h = await _start(make_hs_config, room_list_publication_rules=[], alias_creation_rules=[])
    try:
        alice = await make_user(h, "alice")
        assert (await _create(h, alice, room_alias_name="x")).status == 403
        made = await _create(h, alice, visibility="public")
        assert made.json["room_id"] not in await _public_room_ids(h, alice)
    finally:
        await h.close()


async def test_rc_room_creation_limits_creates_and_upgrades(make_hs_config: MakeConfig) -> None:
    h = await _start(make_hs_config, rc_room_creation={"per_second": 0.01, "burst_count": 2})
    try:
        alice = await make_user(h, "alice")
        with time_stands_still():
            first = await _create(h, alice)
            assert first.status == 200
            upgrade = await h.request(
                "POST",
                f"{V3}/rooms/{first.json['room_id']}/upgrade",
                json={"new_version": "11"},
                token=alice.token,
            )
            assert upgrade.status == 200, upgrade.json
            refused = await _create(h, alice)
            assert (refused.status, refused.json["errcode"]) == (429, "M_LIMIT_EXCEEDED")
            assert refused.json["retry_after_ms"] > 0
            # Messages are not counted against room creation.
            room = first.json["room_id"]
            resp = await h.request(
                "PUT",
                f"{V3}/rooms/{upgrade.json['replacement_room']}/send/m.room.message/t1",
                json={"msgtype": "m.text", "body": "hi"},
                token=alice.token,
            )
            assert resp.status == 200, (room, resp.json)
        await advance(100)
        assert (await _create(h, alice)).status == 200
    finally:
        await h.close()


async def test_rc_presence_and_rc_profile(make_hs_config: MakeConfig) -> None:
    h = await _start(
        make_hs_config,
        rc_presence={"per_user": {"per_second": 0.1, "burst_count": 1}},
        rc_profile={"per_second": 0.01, "burst_count": 3},
    )
    try:
        alice = await make_user(h, "alice")
        path = f"{V3}/presence/{quote(alice.user_id)}/status"
        with time_stands_still():
            assert (
                await h.request("PUT", path, json={"presence": "online"}, token=alice.token)
            ).status == 200
            refused = await h.request(
                "PUT", path, json={"presence": "unavailable"}, token=alice.token
            )
            assert (refused.status, refused.json["errcode"]) == (429, "M_LIMIT_EXCEEDED")
            # A /sync over the limit still syncs; it only leaves presence alone.
            assert (await h.request("GET", f"{V3}/sync", token=alice.token)).status == 200
            state = await h.request("GET", path, token=alice.token)
            assert state.json["presence"] == "online"

            profile = f"{V3}/profile/{quote(alice.user_id)}"
            for _ in range(3):
                assert (await h.request("GET", profile, token=alice.token)).status == 200
            refused = await h.request("GET", profile, token=alice.token)
            assert (refused.status, refused.json["errcode"]) == (429, "M_LIMIT_EXCEEDED")
            # Anonymous lookups are counted per address, apart from alice's.
            assert (await h.request("GET", profile)).status == 200
        await advance(10)
        assert (
            await h.request("PUT", path, json={"presence": "unavailable"}, token=alice.token)
        ).status == 200
    finally:
        await h.close()


def test_config_keys_are_checked() -> None:
    base: dict[str, Any] = {"server_name": "x.test"}
    config, warnings = validate_config(
        {
            **base,
            "rc_room_creation": {"per_second": 1, "burst_count": 2},
            "rc_3pid_validation": {"per_second": 1, "burst_count": 2},
            "alias_creation_rules": [{"user_id": "@a:*", "action": "deny"}],
        },
        config_dir=Path("/srv"),
    )
    assert config.rc_room_creation.burst_count == 2
    assert config.alias_creation_rules[0].user_id == "@a:*"
    assert config.alias_creation_rules[0].alias == "*"
    assert any("rc_3pid_validation" in w and "third-party" in w for w in warnings)
    bad = {**base, "room_list_publication_rules": [{"action": "maybe"}, {"alias": "#x"}]}
    with pytest.raises(ConfigError) as refused:
        validate_config(bad, config_dir=Path("/srv"))
    text = str(refused.value)
    assert "room_list_publication_rules[0].action" in text
    assert "room_list_publication_rules[1].action" in text
