"""Tenants provisioned, suspended, hibernated and removed at runtime, on both engines."""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hamlet.api.server import HOST_SERVER_NAME
from hamlet.config import HomeServerConfig, validate_config
from hamlet.homeserver import HomeServer
from hamlet.host.manager import schema_for
from hamlet.host.process import HostProcess
from hamlet.host.tenant import TenantState
from hamlet.storage.errors import StorageError
from tests.conftest import settle
from tests.support.fds import open_files
from tests.support.harness import RecordingHandler
from tests.support.postgres import PostgresCluster

SECRET = "control-secret"


def main_config(
    tmp_path: Path, engine: str, pg: PostgresCluster | None, **host: Any
) -> HomeServerConfig:
    raw: dict[str, Any] = {
        "server_name": "main.test",
        "public_baseurl": "http://main.test/",
        "listeners": [{"port": 0, "bind_addresses": ["127.0.0.1"]}],
        "registration_shared_secret": "s3cret",
        "bcrypt_rounds": 4,
        "database": {"name": "sqlite3", "args": {"database": str(tmp_path / "main.db")}},
        "signing_key_path": str(tmp_path / "main.key"),
        "host": {
            "control": {"port": 0, "secret": SECRET},
            "tenants_dir": str(tmp_path / "tenants"),
            **host,
        },
    }
    if engine == "postgres":
        assert pg is not None
        raw["host"]["database"] = {
            "name": "psycopg2",
            "args": {**pg.dsn_kwargs(), "cp_min": 1, "cp_max": 4},
        }
    config, _ = validate_config(raw, config_dir=tmp_path)
    return config


@dataclass
class Host:
    process: HostProcess
    session: aiohttp.ClientSession

    @property
    def port(self) -> int:
        return self.process.bound_ports[0]

    async def control(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.process.control_port}{path}"
        headers = {"Authorization": f"Bearer {SECRET}"}
        async with self.session.request(method, url, json=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    async def call(
        self, host: str, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Host": host}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        url = f"http://127.0.0.1:{self.port}{path}"
        async with self.session.request(method, url, json=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    async def register(self, host: str, localpart: str, password: str = "pw") -> str:
        hs = self.process.registry.get(host)
        assert hs is not None
        await hs.registration.register_user(localpart, password)
        status, body = await self.call(
            host,
            "POST",
            "/_matrix/client/v3/login",
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": localpart},
                "password": password,
            },
        )
        assert status == 200, body
        token: str = body["access_token"]
        return token


MakeHost = Callable[..., Any]


@pytest.fixture
async def make_host(
    tmp_path: Path, engine: str, pg_cluster: PostgresCluster | None
) -> AsyncIterator[MakeHost]:
    started: list[Host] = []
    session = aiohttp.ClientSession()

    async def make(**host: Any) -> Host:
        process = HostProcess([main_config(tmp_path, engine, pg_cluster, **host)])
        await process.start()
        h = Host(process, session)
        started.append(h)
        return h

    yield make
    for h in started:
        await h.process.stop()
    await session.close()


async def test_provision_use_restart_suspend_resume_remove(
    make_host: MakeHost, tmp_path: Path, engine: str, log_records: RecordingHandler
) -> None:
    host = await make_host()
    status, body = await host.control("POST", "/tenants", {"server_name": "b.test"})
    assert status == 200, body
    assert body["state"] == "active"
    token = await host.register("b.test", "alice")
    status, body = await host.call(
        "b.test", "GET", "/_matrix/client/v3/account/whoami", token=token
    )
    assert (status, body["user_id"]) == (200, "@alice:b.test")
    status, body = await host.call("b.test", "GET", "/.well-known/matrix/server")
    assert body == {"m.server": "b.test:443"}
    # The main tenant doesn't know alice's token.
    status, body = await host.call(
        "main.test", "GET", "/_matrix/client/v3/account/whoami", token=token
    )
    assert status == 401
    status, body = await host.control("POST", "/tenants", {"server_name": "b.test"})
    assert status == 409
    status, body = await host.control("GET", "/tenants")
    assert sorted(t["server_name"] for t in body["tenants"]) == ["b.test", "main.test"]
    status, body = await host.control("GET", "/tenants/b.test")
    assert (body["users"], body["state"]) == (1, "active")

    # A restart brings back exactly the tenants that existed, with their data.
    await host.process.stop()
    host = await make_host()
    status, body = await host.call(
        "b.test", "GET", "/_matrix/client/v3/account/whoami", token=token
    )
    assert (status, body.get("user_id")) == (200, "@alice:b.test")

    status, _ = await host.control("POST", "/tenants/b.test/suspend")
    assert status == 200
    status, body = await host.call("b.test", "GET", "/_matrix/client/versions")
    assert status == 503
    await host.process.stop()
    host = await make_host()  # suspended survives a restart
    status, _ = await host.call("b.test", "GET", "/_matrix/client/versions")
    assert status == 503
    status, _ = await host.control("POST", "/tenants/b.test/resume")
    status, body = await host.call(
        "b.test", "GET", "/_matrix/client/v3/account/whoami", token=token
    )
    assert (status, body.get("user_id")) == (200, "@alice:b.test")

    status, body = await host.control("DELETE", "/tenants/b.test?purge=true")
    assert status == 200, body
    status, body = await host.call("b.test", "GET", "/_matrix/client/versions")
    assert (status, body["errcode"]) == (404, "M_UNRECOGNIZED")
    assert not (tmp_path / "tenants" / "b.test").exists()
    if engine == "postgres":
        hs = host.process.registry.get("main.test")
        assert hs is not None
    status, body = await host.control("GET", "/tenants/b.test")
    assert status == 404
    # Host lines carry the host's own context.
    lines = log_records.matching("Provisioned tenant b.test")
    assert lines and all(r.server_name == "hamlet-host" for r in lines)  # type: ignore[attr-defined]


async def test_control_api_needs_the_secret(make_host: MakeHost) -> None:
    host = await make_host()
    url = f"http://127.0.0.1:{host.process.control_port}/tenants"
    async with host.session.get(url, headers={"Authorization": "Bearer nope"}) as resp:
        assert resp.status == 401
    async with host.session.get(url) as resp:
        assert resp.status == 401


async def test_bad_tenant_config_is_reported(make_host: MakeHost, tmp_path: Path) -> None:
    host = await make_host()
    status, body = await host.control(
        "POST", "/tenants", {"server_name": "c.test", "config": {"enable_registration": True}}
    )
    assert status == 400
    assert any("enable_registration" in e for e in body["errors"])
    status, body = await host.control("POST", "/tenants", {"server_name": "not a name"})
    assert status == 400
    assert not (tmp_path / "tenants" / "c.test").exists()


def _our_tasks() -> set[asyncio.Task[Any]]:
    """Tasks other than aiohttp's per-connection handlers (keep-alive sockets)."""
    return {
        t
        for t in asyncio.all_tasks()
        if not t.get_coro().__qualname__.startswith("RequestHandler")  # type: ignore[union-attr]
    }


def _fail_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    async def boom(self: Any) -> None:
        raise StorageError("storage unreachable")

    monkeypatch.setattr("hamlet.storage.engines.sqlite.SqliteDatabase.open", boom)
    monkeypatch.setattr("hamlet.storage.engines.postgres.PostgresDatabase.open", boom)


def _fail_migration(monkeypatch: pytest.MonkeyPatch) -> None:
    async def boom(db: Any) -> int:
        raise StorageError("migration failed")

    monkeypatch.setattr("hamlet.homeserver.migrate", boom)


def _fail_service(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: Any, **kwargs: Any) -> None:
        raise RuntimeError("a service constructor failed")

    monkeypatch.setattr("hamlet.handlers.sync.handler.SyncHandler.__init__", boom)


def _fail_start(monkeypatch: pytest.MonkeyPatch) -> None:
    async def boom(self: Any) -> None:
        raise RuntimeError("start failed")

    monkeypatch.setattr(HomeServer, "start", boom)


def _fail_service_start(monkeypatch: pytest.MonkeyPatch) -> None:
    # Services start from call_when_running, after the others' looping calls exist.
    def boom(self: Any) -> None:
        raise RuntimeError("a service's start failed")

    monkeypatch.setattr("hamlet.handlers.media.repository.MediaRepository.start", boom)


@pytest.mark.parametrize(
    "inject", [_fail_storage, _fail_migration, _fail_service, _fail_start, _fail_service_start]
)
async def test_failed_provisioning_leaves_everything_as_it_was(
    make_host: MakeHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inject: Any
) -> None:
    host = await make_host()
    status, _ = await host.control("POST", "/tenants", {"server_name": "ok.test"})
    assert status == 200
    tasks_before = _our_tasks()
    built: list[weakref.ref[HomeServer]] = []
    original_init = HomeServer.__init__

    def tracking_init(self: HomeServer, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        built.append(weakref.ref(self))

    monkeypatch.setattr(HomeServer, "__init__", tracking_init)
    inject(monkeypatch)
    status, body = await host.control("POST", "/tenants", {"server_name": "broken.test"})
    assert status == 500
    assert "broken.test" in body["error"]
    monkeypatch.undo()

    assert host.process.registry.get_tenant("broken.test") is None
    assert not (tmp_path / "tenants" / "broken.test").exists()
    status, body = await host.control("GET", "/tenants")
    assert sorted(t["server_name"] for t in body["tenants"]) == ["main.test", "ok.test"]
    status, _ = await host.call("ok.test", "GET", "/_matrix/client/versions")
    assert status == 200
    await settle()
    assert _our_tasks() - tasks_before == set()
    gc.collect()
    assert built and all(ref() is None for ref in built)
    assert not [f for f in open_files() if "broken.test" in f]
    # The name is free again.
    status, _ = await host.control("POST", "/tenants", {"server_name": "broken.test"})
    assert status == 200


async def test_hibernation_and_wake(make_host: MakeHost) -> None:
    host = await make_host(hibernate_after="60s")
    await host.control("POST", "/tenants", {"server_name": "sleepy.test"})
    token = await host.register("sleepy.test", "bob")
    tenant = host.process.registry.get_tenant("sleepy.test")
    assert tenant is not None
    hs_ref = weakref.ref(tenant.hs)  # type: ignore[arg-type]
    await asyncio.get_running_loop().advance(30)
    assert tenant.state == TenantState.ACTIVE
    await asyncio.get_running_loop().advance(45)
    assert tenant.state == TenantState.HIBERNATED
    assert tenant.hs is None
    gc.collect()
    assert hs_ref() is None, "a hibernated tenant keeps no homeserver"
    status, body = await host.control("GET", "/tenants/sleepy.test")
    assert body["state"] == "hibernated"
    # The first request wakes it and is answered correctly.
    status, body = await host.call(
        "sleepy.test", "GET", "/_matrix/client/v3/account/whoami", token=token
    )
    assert (status, body.get("user_id")) == (200, "@bob:sleepy.test")
    assert tenant.state == TenantState.ACTIVE and tenant.wake_count == 1


async def test_removal_under_load_leaves_nothing(make_host: MakeHost, tmp_path: Path) -> None:
    host = await make_host()
    await host.control("POST", "/tenants", {"server_name": "gone.test"})
    token = await host.register("gone.test", "carol")
    tenant = host.process.registry.get_tenant("gone.test")
    assert tenant is not None and tenant.hs is not None
    hs_ref = weakref.ref(tenant.hs)
    clock_ref = weakref.ref(tenant.hs.clock)
    db_ref = weakref.ref(tenant.hs.db)
    tasks_before = _our_tasks()

    first_served = asyncio.Event()

    async def load() -> list[int]:
        statuses = []
        for _ in range(20):
            status, _ = await host.call(
                "gone.test", "GET", "/_matrix/client/v3/account/whoami", token=token
            )
            statuses.append(status)
            first_served.set()
        return statuses

    workers = [asyncio.ensure_future(load()) for _ in range(10)]
    # Removed while the load is under way, not before it started.
    await first_served.wait()
    status, _ = await host.control("DELETE", "/tenants/gone.test?purge=true")
    assert status == 200
    results = await asyncio.gather(*workers)
    # Requests before the removal were served; after it the host is unknown.
    assert {s for r in results for s in r} <= {200, 404, 503}
    del tenant
    await settle()
    gc.collect()
    assert hs_ref() is None and clock_ref() is None and db_ref() is None
    assert _our_tasks() - tasks_before == set()
    assert not [f for f in open_files() if "gone.test" in f]
    assert not (tmp_path / "tenants" / "gone.test").exists()


async def test_tenant_with_its_own_listener(make_host: MakeHost) -> None:
    host = await make_host()
    status, body = await host.control(
        "POST", "/tenants", {"server_name": "own.test", "listen": {"port": 0}}
    )
    assert status == 200, body
    port = body["listen_port"]
    async with host.session.get(
        f"http://127.0.0.1:{port}/.well-known/matrix/client", headers={"Host": "anything"}
    ) as resp:
        assert (await resp.json())["m.homeserver"]["base_url"] == "https://own.test/"
    await host.control("DELETE", "/tenants/own.test")
    with pytest.raises(aiohttp.ClientConnectionError):
        await host.session.get(f"http://127.0.0.1:{port}/health")


async def test_metrics_are_labelled_per_tenant(make_host: MakeHost) -> None:
    host = await make_host()
    await host.control("POST", "/tenants", {"server_name": "m.test"})
    await host.register("m.test", "dave")
    await host.call("m.test", "GET", "/_matrix/client/versions")
    url = f"http://127.0.0.1:{host.process.control_port}/metrics"
    async with host.session.get(url, headers={"Authorization": f"Bearer {SECRET}"}) as resp:
        text = await resp.text()
    assert 'hamlet_http_requests_total{server_name="m.test"}' in text
    assert 'hamlet_users{server_name="m.test"} 1.0' in text
    assert 'hamlet_rooms{server_name="m.test"} 0.0' in text
    for metric in (
        "hamlet_db_time_seconds_total",
        "hamlet_active_syncs",
        "hamlet_memory_estimate_bytes",
        "hamlet_http_request_duration_seconds_bucket",
    ):
        assert f'{metric}{{server_name="main.test"}}' in text or metric in text


def test_schema_names_are_distinct_and_safe() -> None:
    a, b = schema_for("a-b.example"), schema_for("a.b.example")
    assert a != b
    assert all(c.isalnum() or c == "_" for c in a)


async def test_tenant_cli_drives_the_control_api(
    make_host: MakeHost, capsys: pytest.CaptureFixture[str]
) -> None:
    from hamlet.cli import main as cli

    host = await make_host()
    url = f"http://127.0.0.1:{host.process.control_port}"
    base = ["tenant", "--url", url, "--secret", SECRET]

    async def run(*argv: str) -> tuple[int, str]:
        code = await asyncio.to_thread(cli, [*base, *argv])
        out = capsys.readouterr()
        return code, out.out + out.err

    code, out = await run("add", "cli.test")
    assert code == 0 and '"state": "active"' in out
    code, out = await run("list")
    assert code == 0 and "cli.test" in out and "main.test" in out and "active" in out
    header = out.splitlines()[0]
    for column in ("STATE", "IDLE_S", "REQUESTS", "DB_TIME_S", "ACTIVE_SYNCS", "USERS", "ROOMS"):
        assert column in header
    code, out = await run("show", "cli.test")
    assert code == 0 and '"users": 0' in out
    code, out = await run("suspend", "cli.test")
    assert code == 0
    code, out = await run("list", "--json")
    states = {t["server_name"]: t["state"] for t in json.loads(out)}
    assert states == {"cli.test": "suspended", "main.test": "active"}
    code, out = await run("resume", "cli.test")
    assert code == 0
    code, out = await run("remove", "cli.test", "--purge")
    assert code == 0 and "purged" in out
    code, out = await run("show", "cli.test")
    assert code == 1 and "404" in out
    code = await asyncio.to_thread(cli, ["tenant", "--url", url, "--secret", "wrong", "list"])
    assert code == 1 and "401" in capsys.readouterr().err


async def test_postgres_tenants_share_one_bounded_pool(make_host: MakeHost, engine: str) -> None:
    if engine != "postgres":
        pytest.skip("the shared pool is PostgreSQL's")
    host = await make_host()
    names = [f"pool{i}.test" for i in range(6)]
    for name in names:
        status, body = await host.control("POST", "/tenants", {"server_name": name})
        assert status == 200, body
    tokens = [await host.register(name, "user") for name in names]
    await asyncio.gather(
        *(
            host.call(name, "GET", "/_matrix/client/v3/joined_rooms", token=token)
            for name, token in zip(names, tokens, strict=True)
            for _ in range(5)
        )
    )
    manager = host.process.manager
    pools = set()
    for name in names:
        hs = host.process.registry.get(name)
        assert hs is not None
        pools.add(id(hs.db._pool))  # type: ignore[attr-defined]
        assert hs.db.schema == schema_for(name)  # type: ignore[attr-defined]
    assert pools == {id(manager._pg_pool)}
    pool = await manager._pg_pool.get()  # type: ignore[union-attr]
    assert pool.get_size() <= 4  # host.database cp_max, whatever the number of tenants


async def _metrics(host: Host) -> str:
    url = f"http://127.0.0.1:{host.process.control_port}/metrics"
    async with host.session.get(url, headers={"Authorization": f"Bearer {SECRET}"}) as resp:
        return await resp.text()


def _metric(text: str, line_prefix: str) -> float:
    (line,) = [line for line in text.splitlines() if line.startswith(line_prefix + " ")]
    return float(line.rsplit(" ", 1)[1])


async def test_failed_wake_is_a_shaped_logged_counted_500(
    make_host: MakeHost, monkeypatch: pytest.MonkeyPatch, log_records: RecordingHandler
) -> None:
    host = await make_host(hibernate_after="60s")
    await host.control("POST", "/tenants", {"server_name": "frail.test"})
    tenant = host.process.registry.get_tenant("frail.test")
    assert tenant is not None
    await asyncio.get_running_loop().advance(75)
    assert tenant.state == TenantState.HIBERNATED
    errors = 'hamlet_http_server_errors_total{server_name="frail.test"}'
    requests = 'hamlet_http_requests_total{server_name="frail.test"}'
    before = await _metrics(host)

    _fail_storage(monkeypatch)
    url = f"http://127.0.0.1:{host.port}/_matrix/client/versions"
    async with host.session.get(url, headers={"Host": "frail.test"}) as resp:
        status, headers, body = resp.status, resp.headers, await resp.json()
    assert status == 500
    assert body == {"errcode": "M_UNKNOWN", "error": "Internal server error"}
    assert headers["Access-Control-Allow-Origin"] == "*"
    # The traceback is in the log (under the request's context), never in the body.
    (failure,) = log_records.matching("Request failed")
    assert failure.exc_info is not None and failure.server_name == "frail.test"  # type: ignore[attr-defined]
    access = [r for r in log_records.records if r.name == "hamlet.access"]
    assert [(r.args[1], r.args[8]) for r in access] == [("frail.test", 500)]  # type: ignore[index]
    after = await _metrics(host)
    assert _metric(after, errors) == _metric(before, errors) + 1
    assert _metric(after, requests) == _metric(before, requests) + 1
    assert tenant.state == TenantState.HIBERNATED

    # Once storage is back, the next request wakes it.
    monkeypatch.undo()
    status, _ = await host.call("frail.test", "GET", "/_matrix/client/versions")
    assert status == 200 and tenant.state == TenantState.ACTIVE


async def test_refusals_before_routing_are_shaped_logged_and_counted(
    make_host: MakeHost, log_records: RecordingHandler
) -> None:
    host = await make_host()
    await host.control("POST", "/tenants", {"server_name": "held.test"})
    await host.control("POST", "/tenants/held.test/suspend")
    url = f"http://127.0.0.1:{host.port}/_matrix/client/versions"
    for name, status, errcode in (
        ("held.test", 503, "M_UNKNOWN"),
        ("nobody.test", 404, "M_UNRECOGNIZED"),
    ):
        async with host.session.get(url, headers={"Host": name}) as resp:
            assert resp.status == status
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
            assert (await resp.json())["errcode"] == errcode
    access = [r for r in log_records.records if r.name == "hamlet.access"]
    assert [(r.args[1], r.args[8]) for r in access[-2:]] == [  # type: ignore[index]
        ("held.test", 503),
        (HOST_SERVER_NAME, 404),
    ]
    text = await _metrics(host)
    assert _metric(text, 'hamlet_http_server_errors_total{server_name="held.test"}') == 1
    assert _metric(text, "hamlet_http_unrouted_requests_total") == 1
