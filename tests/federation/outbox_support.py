"""A fake network for the federation sender, and rooms with remote members.

The transport is the network boundary: it records each transaction and can
be told, per destination, to refuse connections, hang until the caller's
timeout, answer an HTTP error, or work.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from hamlet.core.canonical_json import JsonDict
from hamlet.homeserver import HomeServer
from tests.support.harness import Harness, start_harness
from tests.support.users import TestUser

OK = "ok"
DOWN = "down"  # connection refused
HANG = "hang"  # never answers: the caller's timeout ends it


@pytest.fixture(name="fh")
async def presence_harness(make_hs_config) -> AsyncIterator[Harness]:  # type: ignore[no-untyped-def]
    """`fh`: one homeserver with presence on (it is what makes `m.presence` EDUs)."""
    h = await start_harness([make_hs_config(presence={"enabled": True})])
    yield h
    await h.close()


class RemoteHttpError(Exception):
    """What the real client raises for a remote server's error answer."""

    def __init__(self, status: int, errcode: str = "M_UNKNOWN", **fields: Any) -> None:
        super().__init__(f"{status} {errcode}")
        self.status = status
        self.body: JsonDict = {"errcode": errcode, **fields}


@dataclass
class Sent:
    destination: str
    path: str
    body: JsonDict
    timeout_ms: int | None

    @property
    def txn_id(self) -> str:
        return self.path.rsplit("/", 1)[1]


@dataclass
class FakeTransport:
    modes: dict[str, Any] = field(default_factory=dict)
    attempts: list[Sent] = field(default_factory=list)  # every call, failed or not
    delivered: list[Sent] = field(default_factory=list)  # calls that succeeded
    response: JsonDict = field(default_factory=lambda: {"pdus": {}})

    async def put_json(
        self, destination: str, path: str, body: JsonDict, *, timeout_ms: int | None = None
    ) -> JsonDict:
        sent = Sent(destination, path, body, timeout_ms)
        self.attempts.append(sent)
        mode = self.modes.get(destination, OK)
        if mode == DOWN:
            raise ConnectionRefusedError(f"{destination} refused the connection")
        if mode == HANG:
            await asyncio.get_running_loop().create_future()
        if isinstance(mode, int):
            raise RemoteHttpError(mode)
        if isinstance(mode, RemoteHttpError):
            raise mode
        self.delivered.append(sent)
        return self.response

    def to(self, destination: str) -> list[Sent]:
        return [s for s in self.delivered if s.destination == destination]

    def tries(self, destination: str) -> list[Sent]:
        return [s for s in self.attempts if s.destination == destination]


def attach(hs: HomeServer, transport: FakeTransport | None = None) -> FakeTransport:
    transport = transport or FakeTransport()
    hs.federation_sender.attach_transport(transport)
    return transport


async def join_remote(hs: HomeServer, room_id: str, user_id: str) -> None:
    """A remote user's join, persisted through the local event path (the way
    an inbound join will land), which also moves current membership."""
    await hs.event_creator.send(
        user_id, room_id, "m.room.member", {"membership": "join"}, state_key=user_id
    )


async def room_with_remotes(
    harness: Harness, owner: TestUser, *servers: str, hs: HomeServer | None = None
) -> str:
    """A public room of `owner` on `hs` (the harness's first server by
    default) that a user of each of `servers` has joined."""
    hs = hs or harness.hs
    resp = await harness.request(
        "POST",
        "/_matrix/client/v3/createRoom",
        json={"preset": "public_chat"},
        token=owner.token,
        host=hs.server_name,
    )
    assert resp.status == 200, resp.json
    room_id: str = resp.json["room_id"]
    for server in servers:
        await join_remote(hs, room_id, f"@bob:{server}")
    return room_id


def bodies(sent: list[Sent]) -> list[str]:
    """The `body` of each message PDU, in the order delivered."""
    return [
        p["content"]["body"] for s in sent for p in s.body["pdus"] if p["type"] == "m.room.message"
    ]
