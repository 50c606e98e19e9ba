"""Several tenants behind one front door: the Host header picks the homeserver."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from hamlet.api.request import ApiRequest
from hamlet.api.routes import build_router
from hamlet.api.server import HOST_SERVER_NAME
from hamlet.config import HomeServerConfig, ListenerConfig
from hamlet.host.process import HostProcess
from hamlet.runtime.logcontext import current_context
from tests.conftest import settle
from tests.support.harness import Harness, RecordingHandler, start_harness

MakeConfig = Callable[..., HomeServerConfig]
logger = logging.getLogger(__name__)


async def whoami(req: ApiRequest) -> dict[str, Any]:
    ctx = current_context()
    assert ctx is not None
    logger.info("served by %s", req.hs.server_name)
    return {"hs": req.hs.server_name, "ctx_server": ctx.server_name, "request": ctx.request}


def router() -> Any:
    r = build_router()
    r.add("GET", "/_test/whoami", whoami)
    return r


@pytest.fixture
async def two(make_hs_config: MakeConfig) -> AsyncIterator[Harness]:
    a = make_hs_config("a.test")
    b = make_hs_config("b.test", public_baseurl="https://matrix.b-corp.example/")
    harness = await start_harness([a, b], router=router())
    yield harness
    await harness.close()


@pytest.mark.parametrize(
    ("host", "tenant"),
    [
        ("a.test", "a.test"),
        ("b.test", "b.test"),
        ("a.test:8448", "a.test"),
        ("B.TEST", "b.test"),
        ("matrix.b-corp.example", "b.test"),
        ("matrix.b-corp.example:443", "b.test"),
    ],
)
async def test_host_header_picks_the_tenant(
    two: Harness, log_records: RecordingHandler, host: str, tenant: str
) -> None:
    resp = await two.request("GET", "/_test/whoami", host=host)
    assert resp.status == 200
    assert resp.json["hs"] == resp.json["ctx_server"] == tenant
    (line,) = log_records.matching("served by")
    assert line.server_name == tenant  # type: ignore[attr-defined]
    assert line.request == resp.json["request"]  # type: ignore[attr-defined]
    access = [r for r in log_records.records if r.name == "hamlet.access"]
    assert [(r.args[1], r.server_name) for r in access] == [(tenant, tenant)]  # type: ignore[index, attr-defined]


async def test_each_tenant_answers_with_its_own_config(two: Harness) -> None:
    a = await two.request("GET", "/.well-known/matrix/client", host="a.test")
    b = await two.request("GET", "/.well-known/matrix/client", host="b.test")
    assert a.json["m.homeserver"]["base_url"] == "http://a.test/"
    assert b.json["m.homeserver"]["base_url"] == "https://matrix.b-corp.example/"


async def test_unknown_host_is_refused_under_the_host_context(
    two: Harness, log_records: RecordingHandler
) -> None:
    for host in ("c.test", "a.test.evil"):
        resp = await two.request("GET", "/_matrix/client/versions", host=host)
        assert resp.status == 404
        assert resp.json["errcode"] == "M_UNRECOGNIZED"
    lines = log_records.matching("unknown host")
    assert len(lines) == 2
    for line in lines:
        assert line.server_name == "hamlet-host"  # type: ignore[attr-defined]
        assert line.request not in ("sentinel", None)  # type: ignore[attr-defined]


async def test_single_tenant_fallback(make_hs_config: MakeConfig) -> None:
    h = await start_harness([make_hs_config("only.test")], single_tenant_fallback=True)
    try:
        for host in ("only.test", "127.0.0.1:8008", "localhost", "whatever.example"):
            resp = await h.request("GET", "/.well-known/matrix/client", host=host)
            assert resp.status == 200, host
            assert resp.json["m.homeserver"]["base_url"] == "http://only.test/"
    finally:
        await h.close()


async def test_no_fallback_with_two_tenants(make_hs_config: MakeConfig) -> None:
    h = await start_harness(
        [make_hs_config("a.test"), make_hs_config("b.test")], single_tenant_fallback=True
    )
    try:
        resp = await h.request("GET", "/_matrix/client/versions", host="other.test")
        assert resp.status == 404
    finally:
        await h.close()


def on_any_port(config: HomeServerConfig) -> HomeServerConfig:
    return dataclasses.replace(config, listeners=(ListenerConfig(port=0),))


async def test_host_process_serves_two_tenants_on_a_real_port(
    make_hs_config: MakeConfig, log_records: RecordingHandler
) -> None:
    before = set(asyncio.all_tasks())
    a = on_any_port(make_hs_config("a.test"))
    b = make_hs_config("b.test")
    process = HostProcess([a, b])
    await process.start()
    try:
        (port,) = process.bound_ports
        assert port > 0
        async with aiohttp.ClientSession() as session:
            for host, tenant in (("a.test", "a.test"), ("b.test:8448", "b.test")):
                url = f"http://127.0.0.1:{port}/.well-known/matrix/client"
                async with session.get(url, headers={"Host": host}) as resp:
                    assert resp.status == 200
                    body = await resp.json()
                    assert body["m.homeserver"]["base_url"] == f"http://{tenant}/"
            async with session.get(
                f"http://127.0.0.1:{port}/_matrix/client/versions", headers={"Host": "x.test"}
            ) as resp:
                assert resp.status == 404
        servers = {r.args[1] for r in log_records.records if r.name == "hamlet.access"}  # type: ignore[index]
        # The refused host gets its access line too, under the host's own name.
        assert servers == {"a.test", "b.test", HOST_SERVER_NAME}
        assert process.registry.unrouted.count == 1
        homeservers = process.registry.all()
        assert [hs.server_name for hs in homeservers] == ["a.test", "b.test"]
    finally:
        await process.stop()
    assert process.registry.all() == []
    for hs in homeservers:
        assert hs.state == "shut_down"
        assert hs.clock.pending_count() == 0
    await settle()
    assert set(asyncio.all_tasks()) - before == set()
    # The listener is gone.
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"http://127.0.0.1:{port}/health")


async def test_host_process_single_tenant_takes_every_host(make_hs_config: MakeConfig) -> None:
    process = HostProcess([on_any_port(make_hs_config("solo.test"))])
    await process.start()
    try:
        (port,) = process.bound_ports
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"http://127.0.0.1:{port}/_matrix/client/versions",
                headers={"Host": "127.0.0.1:8008"},
            ) as resp,
        ):
            assert resp.status == 200
    finally:
        await process.stop()


async def test_a_failing_tenant_does_not_stop_the_others(
    make_hs_config: MakeConfig, log_records: RecordingHandler
) -> None:
    good = on_any_port(make_hs_config("good.test"))
    bad = make_hs_config("bad.test", signing_key_path="/proc/no/such/dir/key")
    process = HostProcess([good, bad])
    await process.start()
    try:
        assert [hs.server_name for hs in process.registry.all()] == ["good.test"]
        (port,) = process.bound_ports
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/_matrix/client/versions"
            async with session.get(url, headers={"Host": "good.test"}) as resp:
                assert resp.status == 200
            async with session.get(url, headers={"Host": "bad.test"}) as resp:
                assert resp.status == 404
        assert log_records.matching("bad.test failed to start")
    finally:
        await process.stop()


async def test_host_process_stops_what_it_started_when_the_main_server_fails(
    make_hs_config: MakeConfig,
) -> None:
    before = set(asyncio.all_tasks())
    bad = on_any_port(make_hs_config("bad.test", signing_key_path="/proc/no/such/dir/key"))
    good = make_hs_config("good.test")
    process = HostProcess([bad, good])
    with pytest.raises(RuntimeError):
        await process.start()
    assert process.registry.all() == []
    assert process.bound_ports == []
    await settle()
    assert set(asyncio.all_tasks()) - before == set()
