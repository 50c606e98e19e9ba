"""Catch-up after an outage, both ways, with a real Synapse 1.163.2.

Hamlet sends while Synapse is frozen (SIGSTOP: connections hang, as for a
server that stopped answering); its transaction times out, the
destination is backed off, and once Synapse is back and the backoff reset
(Synapse's admin API `reset_connection`) Hamlet catches up with the newest
event and Synapse fetches the rest with /get_missing_events. Synapse sends
while Hamlet's federation listener answers 503 (its backend down behind a
proxy); Synapse retries the transaction on its own schedule and Hamlet gets
every event once it answers again.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from hamlet.api.request import ApiRequest
from hamlet.api.router import Handler, Router
from hamlet.api.routes import build_router
from hamlet.handlers.common.errors import MatrixError
from hamlet.handlers.rooms.sender import Sender
from hamlet.homeserver import HomeServer
from tests.interop.synapse import Synapse
from tests.interop.test_synapse_history import (
    hamlet_bodies_back,
    say,
    synapse_bodies_back,
    synapse_room_with_hamlet_user,
)
from tests.interop.test_synapse_transport import (
    HamletServer,
    MakeConfig,
    eventually,
    hamlet_tls,
    running_hamlet,
)
from tests.support.tls import SelfSigned

__all__ = ["hamlet_tls"]

MESSAGE = "m.room.message"
# One try of 5 s per transaction, then an hour's backoff: only the reset
# brings the destination back within the test.
FEDERATION = {"client_timeout": 5000, "max_long_retries": 0, "destination_min_retry_interval": "1h"}
MISSED = [f"c{i}" for i in range(10)]


@dataclass
class Outage:
    """While `on`, Hamlet's listener answers every request 503, as a server
    whose backend is down behind its proxy; `refused` lists their paths."""

    on: bool = False
    refused: list[str] = field(default_factory=list)

    def routes(self, _server: HamletServer) -> Router:
        router = Router()
        for route in build_router().routes():
            router.add(route.method, route.pattern, self._gated(route.handler), capped=route.capped)
        return router

    def _gated(self, handler: Handler) -> Handler:
        async def gated(req: ApiRequest) -> Any:
            if self.on:
                self.refused.append(req.http.path)
                raise MatrixError(503, "M_UNKNOWN", "Down for maintenance")
            return await handler(req)

        return gated


@pytest.fixture
def outage() -> Outage:
    return Outage()


@pytest.fixture
async def hamlet(
    make_hs_config: MakeConfig, hamlet_tls: SelfSigned, outage: Outage
) -> AsyncIterator[HamletServer]:
    async with running_hamlet(
        make_hs_config, hamlet_tls, outage.routes, federation=FEDERATION
    ) as server:
        server.hs.federation_sender.attach_transport(server.hs.federation_client)
        yield server


async def send(hs: HomeServer, user_id: str, room_id: str, text: str) -> None:
    content = {"msgtype": "m.text", "body": text}
    await hs.event_pipeline.send(Sender.server(user_id), room_id, MESSAGE, content)


async def test_synapse_gets_what_hamlet_sent_while_synapse_was_frozen(
    hamlet: HamletServer, synapse: Synapse
) -> None:
    hs = hamlet.hs
    sybil, user_id, room_id = await synapse_room_with_hamlet_user(hamlet, synapse, 0)
    await send(hs, user_id, room_id, "before")
    assert await eventually(lambda: synapse_bodies_back(sybil, room_id), lambda b: b == ["before"])

    async def retry_last_ts() -> int:
        row = await hs.federation_destinations.get_destination(synapse.server_name)
        return int(row["retry_last_ts"])

    os.kill(synapse.process.pid, signal.SIGSTOP)
    try:
        for text in MISSED:
            await send(hs, user_id, room_id, text)
        assert await eventually(retry_last_ts, lambda ts: ts > 0)
    finally:
        os.kill(synapse.process.pid, signal.SIGCONT)

    async def seen_after_reset() -> list[str]:
        # Synapse takes one transaction per origin at a time and answers 429
        # to another (backing Hamlet off again): the one it was frozen with
        # may still be going on, so reset as often as it takes.
        if await retry_last_ts() > 0:
            await hs.federation_destinations.reset_connection(synapse.server_name)
        return await synapse_bodies_back(sybil, room_id)

    wanted = ["before", *MISSED]
    assert await eventually(seen_after_reset, lambda b: b == wanted), await seen_after_reset()
    assert await retry_last_ts() == 0


async def test_hamlet_gets_what_synapse_sent_while_hamlet_was_down(
    hamlet: HamletServer, synapse: Synapse, outage: Outage
) -> None:
    sybil, user_id, room_id = await synapse_room_with_hamlet_user(hamlet, synapse, 0)

    async def seen() -> list[str]:
        return await hamlet_bodies_back(hamlet.hs, user_id, room_id)

    await say(sybil, room_id, "before")
    assert await eventually(seen, lambda b: b == ["before"])
    outage.on = True
    for text in MISSED:
        await say(sybil, room_id, text)

    async def refused() -> list[str]:
        return outage.refused

    assert await eventually(refused, lambda paths: any("/send/" in p for p in paths))
    outage.on = False
    # Synapse's next try of the transaction is 4 s (x0.8 to x1.4) after the
    # first, 16 s after the second.
    assert await eventually(seen, lambda b: b == ["before", *MISSED], tries=400), await seen()
