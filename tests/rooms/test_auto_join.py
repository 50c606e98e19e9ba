"""auto_join_rooms: new users join the configured rooms, created on demand from an alias."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from hamlet.config import HomeServerConfig
from tests.accounts.conftest import OPEN_REGISTRATION
from tests.accounts.helpers import register_ok
from tests.rooms.helpers import V3, create_room, q
from tests.support.harness import Harness, start_harness
from tests.support.users import make_user

MakeConfig = Callable[..., HomeServerConfig]
LOBBY = "#lobby:test.local"


async def _joined(h: Harness, token: str) -> list[str]:
    resp = await h.request("GET", f"{V3}/joined_rooms", token=token)
    assert resp.status == 200, resp.body
    rooms: list[str] = resp.json["joined_rooms"]
    return rooms


async def _resolve(h: Harness, alias: str) -> Any:
    return await h.request("GET", f"{V3}/directory/room/{q(alias)}")


async def test_the_first_user_creates_the_room_and_later_users_join_it(
    make_hs_config: MakeConfig,
) -> None:
    h = await start_harness([make_hs_config(**OPEN_REGISTRATION, auto_join_rooms=[LOBBY])])
    try:
        assert (await _resolve(h, LOBBY)).status == 404
        alice = await register_ok(h, "alice")
        resp = await _resolve(h, LOBBY)
        assert resp.status == 200
        lobby = resp.json["room_id"]
        assert await _joined(h, alice["access_token"]) == [lobby]
        # A public room: join rules public, and its creator is its admin.
        state = await h.request(
            "GET", f"{V3}/rooms/{q(lobby)}/state/m.room.join_rules/", token=alice["access_token"]
        )
        assert state.json["join_rule"] == "public"

        bob = await register_ok(h, "bob")
        assert await _joined(h, bob["access_token"]) == [lobby]
        members = await h.request(
            "GET", f"{V3}/rooms/{q(lobby)}/joined_members", token=bob["access_token"]
        )
        assert set(members.json["joined"]) == {"@alice:test.local", "@bob:test.local"}
    finally:
        await h.close()


async def test_existing_rooms_by_id_and_alias_and_failures_do_not_block_registration(
    make_hs_config: MakeConfig,
) -> None:
    config = make_hs_config(**OPEN_REGISTRATION)
    h = await start_harness([config])
    try:
        owner = await make_user(h, "owner")
        by_id = await create_room(h, owner, preset="public_chat")
        by_alias = await create_room(h, owner, preset="public_chat", room_alias_name="general")
        private = await create_room(h, owner, preset="private_chat")
        rooms = (by_id, "#general:test.local", private, "#elsewhere:other.example")
        await h.restart(config=dataclasses.replace(config, auto_join_rooms=rooms))
        carol = await register_ok(h, "carol")
        assert sorted(await _joined(h, carol["access_token"])) == sorted([by_id, by_alias])
    finally:
        await h.close()


async def test_without_autocreate_a_missing_alias_is_skipped(make_hs_config: MakeConfig) -> None:
    h = await start_harness(
        [
            make_hs_config(
                **OPEN_REGISTRATION, auto_join_rooms=[LOBBY], autocreate_auto_join_rooms=False
            )
        ]
    )
    try:
        dave = await register_ok(h, "dave")
        assert await _joined(h, dave["access_token"]) == []
        assert (await _resolve(h, LOBBY)).status == 404
    finally:
        await h.close()


async def test_guests_join_unless_told_not_to(make_hs_config: MakeConfig) -> None:
    for for_guests in (True, False):
        h = await start_harness(
            [
                make_hs_config(
                    **OPEN_REGISTRATION,
                    allow_guest_access=True,
                    auto_join_rooms=[LOBBY],
                    auto_join_rooms_for_guests=for_guests,
                )
            ]
        )
        try:
            founder = (await register_ok(h, f"founder{for_guests:d}"))["access_token"]
            lobby = (await _resolve(h, LOBBY)).json["room_id"]
            resp = await h.request("POST", f"{V3}/register?kind=guest", json={})
            assert resp.status == 200, resp.body
            members = await h.request("GET", f"{V3}/rooms/{q(lobby)}/joined_members", token=founder)
            assert (resp.json["user_id"] in members.json["joined"]) is for_guests
        finally:
            await h.close()
