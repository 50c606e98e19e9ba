"""Large response bodies are written a chunk at a time, with a turn for
every other connection after each chunk: a flood of large answers (one
user's identical full syncs) does not hold everyone else's requests while
megabytes are copied."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from hamlet.api import server
from hamlet.config import HomeServerConfig
from tests.support.harness import Harness, start_harness
from tests.support.users import TestUser, make_user
from tests.user_streams.helpers import call

V3 = "/_matrix/client/v3"
#: Under the 1 MiB a sync carries, over the streaming threshold.
PADS = [f"{i:04d}" * 12_000 for i in range(8)]


async def store_pads(h: Harness, user: TestUser) -> None:
    for i, pad in enumerate(PADS):
        resp = await call(h, "PUT", f"/user/{user.user_id}/account_data/big.{i}", user, {"p": pad})
        assert resp.status == 200, resp.body


async def test_a_body_of_a_few_chunks_gives_a_turn_after_each(
    make_hs_config: Callable[..., HomeServerConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    turns: list[int] = []
    real = server.pass_turn

    async def counted() -> None:
        turns.append(1)
        await real()

    monkeypatch.setattr(server, "pass_turn", counted)
    h = await start_harness([make_hs_config()])
    try:
        alice = await make_user(h, "alice")
        await store_pads(h, alice)
        turns.clear()
        resp = await h.request("GET", f"{V3}/sync", token=alice.token)
        assert resp.status == 200
        assert server.STREAM_ABOVE < len(resp.body) < 1024**2
        assert int(resp.headers["Content-Length"]) == len(resp.body)
        events = {e["type"]: e["content"] for e in resp.json["account_data"]["events"]}
        assert [events[f"big.{i}"]["p"] for i in range(8)] == PADS
        assert len(turns) == -(-len(resp.body) // server.STREAM_CHUNK)
        # A small body goes whole.
        turns.clear()
        assert (await h.request("GET", f"{V3}/account/whoami", token=alice.token)).status == 200
        assert turns == []
    finally:
        await h.close()


async def test_a_writer_has_two_large_bodies_written_at_once(
    make_hs_config: Callable[..., HomeServerConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    release = asyncio.Event()

    async def held() -> None:
        await release.wait()

    h = await start_harness([make_hs_config()])
    try:
        alice = await make_user(h, "alice")
        bob = await make_user(h, "bob")
        await store_pads(h, alice)
        await store_pads(h, bob)
        monkeypatch.setattr(server, "pass_turn", held)
        syncs = [
            asyncio.ensure_future(call(h, "GET", "/sync?timeout=0", user))
            for user in (alice, alice, alice, alice, bob)
        ]
        streams = h.frontend._streams  # type: ignore[union-attr]
        for _ in range(1000):
            if streams.running == 3:
                break
            await asyncio.sleep(0.005)
        # Alice's other two wait for hers; Bob's is not behind them.
        assert streams.running == 3 and streams.waiting_owners == 2
        release.set()
        assert [r.status for r in await asyncio.gather(*syncs)] == [200] * 5
    finally:
        await h.close()
