"""What waking, scraping and hibernating tenants cost the host, checked through what it serves."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hamlet.homeserver import HomeServer
from hamlet.host import manager as manager_module
from hamlet.host import metrics
from hamlet.host.tenant import TenantState
from tests.host.test_tenants import Host, MakeHost, make_host  # noqa: F401
from tests.support.serve_process import ServeProcess, main_config

V3 = "/_matrix/client/v3"


async def hibernated(host: Host, *names: str) -> None:
    manager = host.process.manager
    for name in names:
        tenant = host.process.registry.get_tenant(name)
        assert tenant is not None
        await manager.hibernate(tenant)
        assert tenant.state == TenantState.HIBERNATED


@pytest.fixture
def setups_at_once(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """[homeservers being set up now, the most at any time]."""
    counts = [0, 0]
    real = HomeServer.setup

    async def counted(self: HomeServer) -> None:
        counts[0] += 1
        counts[1] = max(counts[1], counts[0])
        try:
            await real(self)
        finally:
            counts[0] -= 1

    monkeypatch.setattr(HomeServer, "setup", counted)
    yield counts


async def test_a_wake_storm_is_served_in_bounded_turns(
    make_host: MakeHost,  # noqa: F811
    setups_at_once: list[int],
) -> None:
    host = await make_host(hibernate_after="1h")
    names = [f"storm{i}.test" for i in range(3 * manager_module.WAKES_AT_ONCE)]
    for name in names:
        status, _ = await host.control("POST", "/tenants", {"server_name": name})
        assert status == 200
    await hibernated(host, *names)
    setups_at_once[1] = 0

    answers = await asyncio.gather(
        *(host.call(name, "GET", "/_matrix/client/versions") for name in names)
    )

    assert [status for status, _ in answers] == [200] * len(names)
    for name in names:
        tenant = host.process.registry.get_tenant(name)
        assert tenant is not None and tenant.state == TenantState.ACTIVE
        assert tenant.wake_count == 1
    # In turns, several at a time: neither one by one nor all at once.
    assert setups_at_once[1] == manager_module.WAKES_AT_ONCE


async def test_a_woken_tenant_keeps_its_data_and_stream_positions(
    make_host: MakeHost,  # noqa: F811
) -> None:
    """A wake checks the schema with one query and loads each stream with one:
    everything written before is there and new events sort after it."""
    host = await make_host(hibernate_after="1h")
    await host.control("POST", "/tenants", {"server_name": "kept.test"})
    token = await host.register("kept.test", "alice")
    status, room = await host.call("kept.test", "POST", f"{V3}/createRoom", {}, token)
    assert status == 200
    room_id = room["room_id"]
    path = f"{V3}/rooms/{room_id}/send/m.room.message"
    status, first = await host.call(
        "kept.test", "PUT", f"{path}/t1", {"msgtype": "m.text", "body": "one"}, token
    )
    assert status == 200
    status, synced = await host.call("kept.test", "GET", f"{V3}/sync?timeout=0", token=token)
    since = synced["next_batch"]
    await hibernated(host, "kept.test")

    status, second = await host.call(
        "kept.test", "PUT", f"{path}/t2", {"msgtype": "m.text", "body": "two"}, token
    )
    assert status == 200
    status, synced = await host.call(
        "kept.test", "GET", f"{V3}/sync?timeout=0&since={since}", token=token
    )
    assert status == 200
    events = synced["rooms"]["join"][room_id]["timeline"]["events"]
    assert [e["content"]["body"] for e in events] == ["two"]
    assert events[0]["event_id"] == second["event_id"] != first["event_id"]
    status, messages = await host.call(
        "kept.test", "GET", f"{V3}/rooms/{room_id}/messages?dir=b&limit=2", token=token
    )
    assert [e["content"]["body"] for e in messages["chunk"]] == ["two", "one"]


async def test_unused_hibernated_tenants_scrape_as_if_written_in_full(
    make_host: MakeHost,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = await make_host(hibernate_after="1h")
    for name in ("quiet.test", "other.test", "used.test"):
        await host.control("POST", "/tenants", {"server_name": name})
    await host.call("used.test", "GET", "/_matrix/client/versions")
    await hibernated(host, "quiet.test", "other.test", "used.test")
    suspended = await host.control("POST", "/tenants/other.test/suspend")
    assert suspended[0] == 200

    async def scrape() -> str:
        url = f"http://127.0.0.1:{host.process.control_port}/metrics"
        headers = {"Authorization": "Bearer control-secret"}
        async with host.session.get(url, headers=headers) as resp:
            assert resp.status == 200
            return await resp.text()

    shortcut = await scrape()
    for tenant in host.process.registry.tenants():
        tenant.metrics_text = None
    monkeypatch.setattr(metrics, "_unused_chunk", lambda tenant: None)
    written_in_full = await scrape()

    assert shortcut == written_in_full
    assert 'hamlet_tenant_state{server_name="quiet.test",state="hibernated"} 1' in shortcut
    assert 'hamlet_tenant_state{server_name="other.test",state="suspended"} 1' in shortcut
    assert "\x00" not in shortcut


def _run_python(code: str, env: dict[str, str]) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def _env_without_allocator() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONMALLOC"}


def test_the_process_starts_over_on_the_system_allocator_once() -> None:
    code = (
        "import os\n"
        "print('start', os.getpid(), os.environ.get('PYTHONMALLOC'), flush=True)\n"
        "from hamlet.runtime.memory import reexec_on_system_malloc\n"
        "reexec_on_system_malloc()\n"
        "print('running', os.getpid())\n"
    )
    lines = _run_python(code, _env_without_allocator())
    # Started over as the same process, then ran on: the allocator is chosen once.
    pid = lines[1]
    assert lines == ["start", pid, "None", "start", pid, "malloc", "running", pid]


def test_an_allocator_the_operator_chose_is_kept() -> None:
    code = (
        "import os\n"
        "from hamlet.runtime.memory import reexec_on_system_malloc\n"
        "reexec_on_system_malloc()\n"
        "print(os.environ['PYTHONMALLOC'])\n"
    )
    assert _run_python(code, {**_env_without_allocator(), "PYTHONMALLOC": "pymalloc"}) == [
        "pymalloc"
    ]


def test_hamlet_serve_runs_on_the_system_allocator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHONMALLOC", raising=False)
    config: dict[str, Any] = main_config(tmp_path)
    serve = ServeProcess(tmp_path, config)
    serve.start()
    try:
        assert serve.proc is not None
        environ = Path(f"/proc/{serve.proc.pid}/environ").read_bytes().split(b"\0")
        assert b"PYTHONMALLOC=malloc" in environ
        status, _ = serve.request("GET", "/_matrix/client/versions")
        assert status == 200
    finally:
        assert serve.stop() == 0
