"""Rate-limit overrides (real 429s) and `hamlet admin make-admin`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hamlet.cli import main
from hamlet.config import load_config
from hamlet.homeserver import HomeServer
from tests.admin.users_support import (
    OPEN,
    V1,
    assert_error,
    create_room,
    ok,
    send_text,
)
from tests.conftest import advance, time_stands_still
from tests.support.harness import Harness, start_harness
from tests.support.users import make_user


@pytest.fixture
async def strict(make_hs_config) -> AsyncIterator[Harness]:  # type: ignore[no-untyped-def]
    """rc_message: 2 at once, then one every 10 seconds."""
    harness = await start_harness(
        [make_hs_config(**OPEN, rc_message={"per_second": 0.1, "burst_count": 2})]
    )
    yield harness
    await harness.close()


async def test_override_ratelimit_changes_real_429s(strict: Harness) -> None:
    h = strict
    admin = await make_user(h, "admin", admin=True)
    alice = await make_user(h, "alice")
    room_id = await create_room(h, alice)
    await advance(10)  # createRoom counted against rc_message too; let it leak away
    # Counted with time held still: the requests' own real duration would
    # otherwise leak allowance back on a loaded machine.
    with time_stands_still():
        url = f"{V1}/users/{alice.user_id}/override_ratelimit"
        assert ok(await h.request("GET", url, token=admin.token)) == {}

        # The configured limit: two messages, then 429.
        assert (await send_text(h, alice, room_id, "1", "a1")).status == 200
        assert (await send_text(h, alice, room_id, "2", "a2")).status == 200
        resp = await send_text(h, alice, room_id, "3", "a3")
        assert_error(resp, 429, "M_LIMIT_EXCEEDED")
        assert resp.json["retry_after_ms"] > 0

        # 0 messages per second: not limited at all.
        resp = await h.request(
            "POST", url, json={"messages_per_second": 0, "burst_count": 0}, token=admin.token
        )
        assert ok(resp) == {"messages_per_second": 0, "burst_count": 0}
        assert ok(await h.request("GET", url, token=admin.token)) == {
            "messages_per_second": 0,
            "burst_count": 0,
        }
        for i in range(10):
            assert (await send_text(h, alice, room_id, "free", f"b{i}")).status == 200

        # A generous override: more messages than the configured burst.
        ok(
            await h.request(
                "POST", url, json={"messages_per_second": 1, "burst_count": 6}, token=admin.token
            )
        )
        statuses = [(await send_text(h, alice, room_id, "x", f"c{i}")).status for i in range(6)]
        assert statuses.count(200) == 4 and statuses[-1] == 429, statuses  # 2 used before
        await advance(3)
        assert (await send_text(h, alice, room_id, "later", "c-later")).status == 200

        # Deleted: back to the configured limit.
        assert ok(await h.request("DELETE", url, token=admin.token)) == {}
        assert ok(await h.request("GET", url, token=admin.token)) == {}
        assert_error(await send_text(h, alice, room_id, "no", "d1"), 429, "M_LIMIT_EXCEEDED")

        # Other users keep the configured limit throughout.
        bob = await make_user(h, "bob")
        room_b = await create_room(h, bob)
        await advance(10)
        assert (await send_text(h, bob, room_b, "1", "e1")).status == 200
        assert (await send_text(h, bob, room_b, "2", "e2")).status == 200
        assert_error(await send_text(h, bob, room_b, "3", "e3"), 429, "M_LIMIT_EXCEEDED")


async def test_override_ratelimit_refusals(strict: Harness) -> None:
    h = strict
    admin = await make_user(h, "admin", admin=True)
    alice = await make_user(h, "alice")
    url = f"{V1}/users/{alice.user_id}/override_ratelimit"
    for body in (
        {"messages_per_second": -1},
        {"burst_count": "10"},
        {"messages_per_second": 1.5},
        {"burst_count": True},
    ):
        assert_error(
            await h.request("POST", url, json=body, token=admin.token), 400, "M_INVALID_PARAM"
        )
    # Defaults are 0/0 (exempt).
    assert ok(await h.request("POST", url, json={}, token=admin.token)) == {
        "messages_per_second": 0,
        "burst_count": 0,
    }
    missing = f"{V1}/users/@nobody:test.local/override_ratelimit"
    for method in ("GET", "POST", "DELETE"):
        resp = await h.request(
            method, missing, json={} if method == "POST" else None, token=admin.token
        )
        assert_error(resp, 404, "M_NOT_FOUND")
    resp = await h.request(
        "GET", f"{V1}/users/@a:elsewhere.org/override_ratelimit", token=admin.token
    )
    assert_error(resp, 400, "M_UNKNOWN")


# hamlet admin make-admin (no running server: straight on the database)


def _write_config(tmp_path: Path) -> Path:
    path = tmp_path / "homeserver.yaml"
    path.write_text(
        "server_name: cli.test\n"
        f"signing_key_path: {tmp_path / 'signing.key'}\n"
        f"database: {{name: sqlite3, args: {{database: {tmp_path / 'hs.db'}}}}}\n"
        "bcrypt_rounds: 4\n"
    )
    return path


async def _with_hs(path: Path, user: str | None = None) -> bool:
    config, _ = load_config(path)
    hs = HomeServer(config)
    await hs.setup()
    try:
        if user is not None:
            await hs.registration.register_user(user, "password")
        record = await hs.account_store.get_user("@carol:cli.test")
        return record is not None and record.admin
    finally:
        await hs.shutdown()


def test_cli_make_admin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write_config(tmp_path)
    assert asyncio.run(_with_hs(path, "carol")) is False
    assert main(["admin", "make-admin", "carol", "-c", str(path)]) == 0
    assert "@carol:cli.test is now a server admin" in capsys.readouterr().out
    assert asyncio.run(_with_hs(path)) is True
    # Idempotent; full IDs work too.
    assert main(["admin", "make-admin", "@carol:cli.test", "--config", str(path)]) == 0


def test_cli_make_admin_refuses_unknown_users(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_config(tmp_path)
    assert main(["admin", "make-admin", "nobody", "-c", str(path)]) != 0
    assert "No such user: @nobody:cli.test" in capsys.readouterr().err
    assert main(["admin", "make-admin", "@x:other.test", "-c", str(path)]) != 0
    assert "not a user of cli.test" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("server_name: 'not a name!'\n")
    assert main(["admin", "make-admin", "carol", "-c", str(bad)]) != 0
