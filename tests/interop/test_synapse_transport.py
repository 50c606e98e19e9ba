"""Transport interop with a real Synapse 1.163.2: discovery, TLS and X-Matrix, both ways.

Hamlet's tenant federates as `127.0.0.1:<port>` on a TLS federation
listener (self-signed certificate, loopback allowed), as Synapse does.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import pytest

from hamlet.api.federation.queries import query_profile
from hamlet.api.federation.signed import signed
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.api.routes import build_router
from hamlet.config import HomeServerConfig
from hamlet.core.crypto import verify_signed_json
from hamlet.core.xmatrix import parse_header, verify_request
from hamlet.handlers.rooms.sender import Sender
from hamlet.homeserver import HomeServer
from hamlet.host.process import HostProcess
from tests.interop.synapse import Synapse, free_port
from tests.support.tls import SelfSigned, make_self_signed

MakeConfig = Callable[..., HomeServerConfig]
MESSAGE = "m.room.message"
T = TypeVar("T")


@dataclass
class HamletServer:
    process: HostProcess
    server_name: str
    #: (URI, Authorization, Host) of each profile query Synapse sent.
    profile_queries: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def hs(self) -> HomeServer:
        tenant = self.process.registry.get_tenant(self.server_name)
        assert tenant is not None and tenant.hs is not None
        return tenant.hs


@pytest.fixture(scope="module")
def hamlet_tls(tmp_path_factory: pytest.TempPathFactory) -> SelfSigned:
    return make_self_signed(tmp_path_factory.mktemp("hamlet-tls"))


@asynccontextmanager
async def running_hamlet(
    make_hs_config: MakeConfig,
    tls: SelfSigned,
    routes: Callable[[HamletServer], Router],
    **overrides: Any,
) -> AsyncIterator[HamletServer]:
    """A Hamlet tenant on a TLS federation listener serving `routes`."""
    port = free_port()
    server_name = f"127.0.0.1:{port}"
    config = make_hs_config(
        server_name,
        listeners=[
            {"port": port, "tls": True, "resources": [{"names": ["federation"]}]},
        ],
        tls_certificate_path=str(tls.certificate),
        tls_private_key_path=str(tls.private_key),
        federation_verify_certificates=False,
        federation_ip_range_blacklist=[],
        **overrides,
    )
    process = HostProcess([config])
    server = HamletServer(process, server_name)
    process.frontend.router = routes(server)
    await process.start()
    try:
        yield server
    finally:
        await process.stop()


def recording_profile_queries(server: HamletServer) -> Router:
    """Records how Synapse asked for a profile, so the test can check the
    signature itself, then answers as the real route does."""
    answer_profile = signed(query_profile)

    async def profile(req: ApiRequest) -> dict[str, Any]:
        headers = req.http.headers
        server.profile_queries.append(
            (req.http.raw_path, headers.get("Authorization", ""), headers.get("Host", ""))
        )
        answered: dict[str, Any] = await answer_profile(req)
        return answered

    router = Router()
    router.add("GET", "/_matrix/federation/v1/query/profile", profile)
    for route in build_router().routes():
        router.add(route.method, route.pattern, route.handler, capped=route.capped)
    return router


@pytest.fixture
async def hamlet(make_hs_config: MakeConfig, hamlet_tls: SelfSigned) -> AsyncIterator[HamletServer]:
    async with running_hamlet(make_hs_config, hamlet_tls, recording_profile_queries) as server:
        await server.hs.registration.register_user("alice", displayname="Alice of Hamlet")
        yield server


async def test_hamlet_fetches_synapse_keys_over_tls(hamlet: HamletServer, synapse: Synapse) -> None:
    """Discovery of an IP literal, TLS without verification, a JSON answer Synapse signed."""
    keys = await hamlet.hs.federation_client.get_json(synapse.server_name, "/_matrix/key/v2/server")
    assert keys["server_name"] == synapse.server_name
    verify_keys = {key_id: v["key"] for key_id, v in keys["verify_keys"].items()}
    verify_signed_json(keys, synapse.server_name, verify_keys)


async def test_hamlet_fetches_synapse_version(hamlet: HamletServer, synapse: Synapse) -> None:
    """Synapse checks the X-Matrix signature even here: it fetches our key to do so."""
    version = await hamlet.hs.federation_client.get_json(
        synapse.server_name, "/_matrix/federation/v1/version"
    )
    assert version["server"]["name"] == "Synapse"
    assert version["server"]["version"].startswith("1.163.2")


async def test_synapse_queries_hamlet_over_tls_with_a_valid_x_matrix_signature(
    hamlet: HamletServer, synapse: Synapse
) -> None:
    user = f"@alice:{hamlet.server_name}"
    status, body = await asyncio.to_thread(
        synapse.client, "GET", f"/_matrix/client/v3/profile/{quote(user)}"
    )
    assert (status, body) == (200, {"displayname": "Alice of Hamlet"})
    ((uri, authorization, host),) = hamlet.profile_queries
    assert host == hamlet.server_name
    auth = parse_header(authorization)
    assert auth.origin == synapse.server_name
    assert auth.destination == hamlet.server_name
    keys = await hamlet.hs.federation_client.get_json(synapse.server_name, "/_matrix/key/v2/server")
    verify_request(
        auth,
        method="GET",
        uri=uri,
        destination=hamlet.server_name,
        content=None,
        verify_key=keys["verify_keys"][auth.key_id]["key"],
    )


async def test_synapse_accepts_hamlets_server_keys_through_its_notary(
    hamlet: HamletServer, synapse: Synapse
) -> None:
    """Synapse fetches our /_matrix/key/v2/server over TLS and checks our self-signature."""
    own_key_id = hamlet.hs.signing_key.key_id
    # Naming the key ID makes Synapse fetch it on a cache miss.
    criteria = {"minimum_valid_until_ts": hamlet.hs.clock.time_msec()}
    query = {"server_keys": {hamlet.server_name: {own_key_id: criteria}}}
    status, body = await asyncio.to_thread(synapse.client, "POST", "/_matrix/key/v2/query", query)
    assert status == 200, body
    (keys,) = body["server_keys"]
    assert keys["server_name"] == hamlet.server_name
    assert own_key_id in keys["verify_keys"]
    # Synapse countersigned what it accepted from us.
    assert set(keys["signatures"]) == {hamlet.server_name, synapse.server_name}


async def eventually(
    fetch: Callable[[], Awaitable[T]], done: Callable[[T], bool], tries: int = 200
) -> bool:
    """Real servers on real time: poll, within a bounded deadline (`tries` tenths of a second)."""
    for _ in range(tries):
        if done(await fetch()):
            return True
        await asyncio.sleep(0.1)
    return False


async def test_a_hamlet_user_joins_a_synapse_room_by_alias(
    hamlet: HamletServer, synapse: Synapse
) -> None:
    """make_join / send_join against Synapse: it accepts our signed join,
    and we accept its state and auth chain."""

    def on_synapse(method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        return asyncio.to_thread(synapse.client, method, path, body, token)

    # One Synapse serves the whole session: names of this run's own.
    suffix = secrets.token_hex(4)

    status, reg = await on_synapse(
        "POST",
        "/_matrix/client/v3/register",
        {
            "username": f"sybil{suffix}",
            "password": "interop-pw-1",
            "auth": {"type": "m.login.dummy"},
        },
    )
    assert status == 200, reg
    token = reg["access_token"]
    status, made = await on_synapse(
        "POST",
        "/_matrix/client/v3/createRoom",
        {"preset": "public_chat", "room_alias_name": f"interop{suffix}", "room_version": "10"},
        token,
    )
    assert status == 200, made
    room_id = made["room_id"]
    hs = hamlet.hs
    user_id = await hs.registration.register_user("jo")
    located = await hs.federation_joins.locate(f"#interop{suffix}:{synapse.server_name}", [])
    assert located is not None and located[0] == room_id
    await hs.federation_joins.join(user_id, *located)
    status, members = await on_synapse(
        "GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/joined_members", None, token
    )
    assert status == 200, members
    assert set(members["joined"]) == {reg["user_id"], user_id}
    # Our side holds the room too: both servers are in it.
    assert await hs.rooms_store.get_joined_hosts(room_id) == {
        hamlet.server_name,
        synapse.server_name,
    }

    # Messages both ways: Synapse's transaction reaches our /send, ours its.
    hs.federation_sender.attach_transport(hs.federation_client)
    path = f"/_matrix/client/v3/rooms/{quote(room_id)}"
    text = {"msgtype": "m.text", "body": "from synapse"}
    status, sent = await on_synapse("PUT", f"{path}/send/m.room.message/s1", text, token)
    assert status == 200, sent

    async def our_bodies() -> list[str]:
        events = await hs.room_history_store.get_room_events(
            room_id, after=None, before=None, limit=20, backwards=True
        )
        return [str(e.event.content.get("body")) for e in events if e.event.type == MESSAGE]

    assert await eventually(our_bodies, lambda bodies: "from synapse" in bodies)
    text = {"msgtype": "m.text", "body": "from hamlet"}
    await hs.event_pipeline.send(Sender.server(user_id), room_id, MESSAGE, text)

    async def their_bodies() -> list[str]:
        status, page = await on_synapse("GET", f"{path}/messages?dir=b&limit=20", None, token)
        assert status == 200, page
        return [e["content"].get("body", "") for e in page["chunk"] if e["type"] == MESSAGE]

    assert await eventually(their_bodies, lambda bodies: "from hamlet" in bodies)
