"""Scrapes of many tenants: `GET /tenants` pages, and idle tenants cost no queries."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import settle
from tests.host.test_tenants import SECRET, Host, MakeHost, make_host  # noqa: F401


async def _names(host: Host, query: str) -> tuple[list[str], dict[str, Any]]:
    status, body = await host.control("GET", f"/tenants{query}")
    assert status == 200, body
    return [t["server_name"] for t in body["tenants"]], body


async def test_tenants_are_paged_by_from_and_limit(make_host: MakeHost) -> None:  # noqa: F811
    host = await make_host()
    for name in ("pg-c.test", "pg-a.test", "pg-b.test"):
        status, body = await host.control("POST", "/tenants", {"server_name": name})
        assert status == 200, body
    everyone = ["main.test", "pg-a.test", "pg-b.test", "pg-c.test"]
    # Without paging: every tenant, as before (and the total).
    names, body = await _names(host, "")
    assert names == everyone and body["total"] == 4 and "next_token" not in body
    names, body = await _names(host, "?limit=3")
    assert names == everyone[:3] and body["next_token"] == "3" and body["total"] == 4
    names, body = await _names(host, f"?from={body['next_token']}&limit=3")
    assert names == everyone[3:] and "next_token" not in body
    names, body = await _names(host, "?from=9")
    assert names == [] and body["total"] == 4


@pytest.mark.parametrize(
    "query", ["?limit=0", "?limit=1001", "?limit=x", "?from=-1", "?from=1e3", "?limit=%D9%A3"]
)
async def test_bad_paging_is_a_400(make_host: MakeHost, query: str) -> None:  # noqa: F811
    host = await make_host()
    status, body = await host.control("GET", f"/tenants{query}")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), body


async def _scrape(host: Host) -> str:
    url = f"http://127.0.0.1:{host.process.control_port}/metrics"
    async with host.session.get(url, headers={"Authorization": f"Bearer {SECRET}"}) as resp:
        assert resp.status == 200
        return await resp.text()


async def test_an_idle_awake_tenant_is_not_counted_again(make_host: MakeHost) -> None:  # noqa: F811
    host = await make_host()
    await host.control("POST", "/tenants", {"server_name": "idle.test"})
    hs = host.process.registry.get("idle.test")
    assert hs is not None

    def counted() -> float:
        return hs.db.txn_totals.get("count_users", [0, 0.0])[0]

    # Its startup jobs (the federation sender's look for work) done first.
    await settle()
    assert 'hamlet_users{server_name="idle.test"} 0.0' in await _scrape(host)
    assert counted() == 1
    await _scrape(host)
    await host.control("GET", "/tenants")
    assert counted() == 1, "nothing was written: the last counts stand"
    # A write is seen by the next scrape, whichever it is.
    await host.register("idle.test", "alice")
    names, body = await _names(host, "")
    assert body["tenants"][names.index("idle.test")]["users"] == 1
    assert counted() == 2
    assert 'hamlet_users{server_name="idle.test"} 1.0' in await _scrape(host)
    assert counted() == 2


def _value(text: str, sample: str) -> float:
    (line,) = [line for line in text.splitlines() if line.startswith(sample + " ")]
    return float(line.rsplit(" ", 1)[1])


async def test_a_hibernated_tenants_figures_follow_its_requests(
    make_host: MakeHost,  # noqa: F811
) -> None:
    host = await make_host(hibernate_after="60s")
    await host.control("POST", "/tenants", {"server_name": "nap.test"})
    tenant = host.process.registry.get_tenant("nap.test")
    assert tenant is not None
    requests = 'hamlet_http_requests_total{server_name="nap.test"}'
    for expected in (1.0, 2.0):
        await host.call("nap.test", "GET", "/_matrix/client/versions")
        await host.process.manager.hibernate(tenant)
        assert tenant.hs is None
        # Scraped twice while asleep (the second from the kept text): the same figures.
        for _ in range(2):
            text = await _scrape(host)
            assert _value(text, requests) == expected
            assert 'hamlet_tenant_state{server_name="nap.test",state="hibernated"} 1.0' in text
    # Suspended: its state line says so, though its figures did not move.
    await host.control("POST", "/tenants/nap.test/suspend")
    text = await _scrape(host)
    assert 'hamlet_tenant_state{server_name="nap.test",state="suspended"} 1.0' in text
