"""Tenants changing state while requests, scrapes and restarts run: no stuck or failing host."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from hamlet.homeserver import HomeServer
from hamlet.host.tenant import Tenant, TenantState
from hamlet.storage.errors import StorageError
from tests.accounts.helpers import register
from tests.admin.users_support import OPEN
from tests.conftest import settle
from tests.host.test_tenants import SECRET, Host, MakeHost, make_host  # noqa: F401
from tests.support.harness import RecordingHandler, start_harness

WHOAMI = "/_matrix/client/v3/account/whoami"


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never met")


def _hold_wake(tenant: Tenant) -> tuple[asyncio.Event, asyncio.Event]:
    """Make the tenant's next wake stop half way until `go` is set; `waking` says it got there."""
    waking, go = asyncio.Event(), asyncio.Event()
    real = tenant._waker
    assert real is not None

    async def held(t: Tenant) -> HomeServer:
        waking.set()
        await go.wait()
        return await real(t)

    tenant._waker = held
    return waking, go


async def _hibernated_with_alice(host: Host, name: str) -> tuple[Tenant, str]:
    status, body = await host.control("POST", "/tenants", {"server_name": name})
    assert status == 200, body
    token = await host.register(name, "alice")
    tenant = host.process.registry.get_tenant(name)
    assert tenant is not None
    await host.process.manager.hibernate(tenant)
    assert (tenant.state, tenant.hs) == (TenantState.HIBERNATED, None)
    return tenant, token


async def _during_a_wake(
    host: Host, name: str, method: str, path: str, reached: TenantState
) -> tuple[Tenant, str, int, int]:
    """A request wakes the hibernated tenant; half way, the control call `method path`
    comes (and has set `reached`). Returns the tenant, alice's token and both statuses."""
    tenant, token = await _hibernated_with_alice(host, name)
    waking, go = _hold_wake(tenant)
    request = asyncio.ensure_future(host.call(name, "GET", WHOAMI, token=token))
    await waking.wait()
    control = asyncio.ensure_future(host.control(method, path))
    await _until(lambda: tenant.state == reached)
    go.set()
    return tenant, token, (await request)[0], (await control)[0]


async def test_a_suspend_during_a_wake_leaves_the_tenant_suspended_then_resumable(
    make_host: MakeHost,  # noqa: F811
    engine: str,
) -> None:
    host = await make_host()
    name = f"wake-race-{engine}.test"
    tenant, token, request, suspend = await _during_a_wake(
        host, name, "POST", f"/tenants/{name}/suspend", TenantState.SUSPENDED
    )
    assert (request, suspend) == (503, 200)
    assert (tenant.state, tenant.hs) == (TenantState.SUSPENDED, None)
    status, _ = await host.call(name, "GET", "/_matrix/client/versions")
    assert status == 503

    status, _ = await host.control("POST", f"/tenants/{name}/resume")
    assert status == 200
    status, body = await host.call(name, "GET", WHOAMI, token=token)
    assert (status, body.get("user_id")) == (200, f"@alice:{name}")
    await host.control("DELETE", f"/tenants/{name}?purge=true")


async def test_a_removal_during_a_wake_shuts_the_woken_homeserver_down(
    make_host: MakeHost,  # noqa: F811
    engine: str,
) -> None:
    host = await make_host(drain_timeout="0s")
    name = f"wake-remove-{engine}.test"
    tenant, _, request, remove = await _during_a_wake(
        host, name, "DELETE", f"/tenants/{name}?purge=true", TenantState.STOPPING
    )
    assert request in (404, 503)
    assert remove == 200
    assert (tenant.state, tenant.hs) == (TenantState.REMOVED, None)


async def _scrape(host: Host, path: str) -> tuple[int, Any]:
    """A control GET whose answer is JSON (/tenants) or Prometheus text (/metrics)."""
    url = f"http://127.0.0.1:{host.process.control_port}{path}"
    headers = {"Authorization": f"Bearer {SECRET}"}
    async with host.session.get(url, headers=headers) as resp:
        text = await resp.text()
        return resp.status, json.loads(text) if path == "/tenants" else text


def _blocking(calls: list[str], gate: asyncio.Event) -> Callable[[], Awaitable[int]]:
    async def count() -> int:
        calls.append("count")
        await gate.wait()
        return 7

    return count


@pytest.mark.parametrize("path", ["/tenants", "/metrics"])
async def test_a_tenant_hibernating_or_suspended_mid_scrape_fails_nothing(
    make_host: MakeHost,  # noqa: F811
    engine: str,
    path: str,
) -> None:
    host = await make_host()
    name = f"scrape-{path.strip('/')}-{engine}.test"
    status, _ = await host.control("POST", "/tenants", {"server_name": name})
    assert status == 200
    tenant = host.process.registry.get_tenant(name)
    assert tenant is not None and tenant.hs is not None
    calls: list[str] = []
    gate = asyncio.Event()
    tenant.hs.account_store.count_users = _blocking(calls, gate)  # type: ignore[method-assign]
    scrape = asyncio.ensure_future(_scrape(host, path))
    await _until(lambda: bool(calls))

    # Hibernation leaves a tenant being read alone; a suspension waits for the read.
    await host.process.manager.hibernate(tenant)
    assert tenant.state == TenantState.ACTIVE
    suspend = asyncio.ensure_future(host.control("POST", f"/tenants/{name}/suspend"))
    await _until(lambda: tenant.state == TenantState.SUSPENDED)
    assert tenant.hs is not None
    gate.set()
    status, body = await scrape
    assert status == 200
    assert (await suspend)[0] == 200
    assert tenant.hs is None
    if path == "/tenants":
        (row,) = [t for t in body["tenants"] if t["server_name"] == name]
        assert row["users"] == 7
    else:
        assert f'hamlet_users{{server_name="{name}"}} 7.0' in body
    await host.control("DELETE", f"/tenants/{name}?purge=true")


@pytest.mark.parametrize("path", ["/tenants", "/metrics"])
async def test_a_tenant_whose_database_fails_mid_scrape_is_reported_without_numbers(
    make_host: MakeHost,  # noqa: F811
    engine: str,
    path: str,
) -> None:
    host = await make_host()
    name = f"closed-{path.strip('/')}-{engine}.test"
    await host.control("POST", "/tenants", {"server_name": name})
    tenant = host.process.registry.get_tenant(name)
    assert tenant is not None and tenant.hs is not None

    async def closed() -> int:
        raise StorageError("database is closed")

    tenant.hs.rooms_store.count_rooms = closed  # type: ignore[method-assign]
    status, body = await _scrape(host, path)
    assert status == 200
    if path == "/tenants":
        rows = {t["server_name"]: t for t in body["tenants"]}
        assert rows[name]["rooms"] is None
        assert rows["main.test"]["users"] == 0
    else:
        assert f'hamlet_tenant_state{{server_name="{name}",state="active"}} 1.0' in body
    await host.control("DELETE", f"/tenants/{name}?purge=true")


async def test_a_tenant_whose_own_port_is_taken_at_restart_stays_down_alone(
    make_host: MakeHost,  # noqa: F811
    tmp_path: Path,
    engine: str,
    log_records: RecordingHandler,
) -> None:
    host = await make_host()
    own, other = f"own-port-{engine}.test", f"neighbour-{engine}.test"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    status, body = await host.control(
        "POST", "/tenants", {"server_name": own, "listen": {"port": port}}
    )
    assert (status, body.get("listen_port")) == (200, port), body
    await host.control("POST", "/tenants", {"server_name": other})
    token = await host.register(other, "bob")
    await host.process.stop()

    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    try:
        host = await make_host()
        status, body = await host.call(other, "GET", WHOAMI, token=token)
        assert (status, body.get("user_id")) == (200, f"@bob:{other}")
        status, _ = await host.call("main.test", "GET", "/_matrix/client/versions")
        assert status == 200
        status, _ = await host.call(own, "GET", "/_matrix/client/versions")
        assert status == 404
        assert log_records.matching(f"Tenant {own} is down")
        assert own in host.process.manager.start_failures
    finally:
        squatter.close()
    # Still the operator's to remove.
    status, body = await host.control("DELETE", f"/tenants/{own}?purge=true")
    assert status == 200, body
    assert not (tmp_path / "tenants" / own).exists()
    await host.control("DELETE", f"/tenants/{other}?purge=true")


async def test_max_users_holds_under_concurrent_registrations(make_hs_config: Any) -> None:
    h = await start_harness([make_hs_config("capped.test", limits={"max_users": 5}, **OPEN)])
    try:
        results = await asyncio.gather(*(register(h, f"user{i}") for i in range(50)))
        await settle()
        statuses = sorted(r.status for r in results)
        assert statuses == [200] * 5 + [403] * 45
        refused = [r for r in results if r.status == 403]
        assert {r.json["errcode"] for r in refused} == {"M_RESOURCE_LIMIT_EXCEEDED"}
        assert await h.hs.account_store.count_users() == 5
    finally:
        await h.close()
