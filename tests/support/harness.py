"""Real homeservers on real storage, served over real HTTP, for tests."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from hamlet.api.router import Router
from hamlet.api.routes import build_router
from hamlet.api.server import HttpFrontend
from hamlet.config import HomeServerConfig, validate_config
from hamlet.config.model import ListenerConfig
from hamlet.homeserver import HomeServer
from hamlet.host.registry import TenantRegistry
from tests.support.postgres import PostgresCluster

_schema_counter = itertools.count(1)


def make_config(
    tmp_path: Path,
    engine: str,
    pg: PostgresCluster | None,
    server_name: str = "test.local",
    **overrides: Any,
) -> HomeServerConfig:
    tenant_dir = tmp_path / server_name.replace(":", "_")
    tenant_dir.mkdir(parents=True, exist_ok=True)
    raw: dict[str, Any] = {
        "server_name": server_name,
        "public_baseurl": f"http://{server_name}/",
        "signing_key_path": str(tenant_dir / "signing.key"),
        "registration_shared_secret": "s3cret",
        "bcrypt_rounds": 4,
    }
    if engine == "sqlite":
        raw["database"] = {"name": "sqlite3", "args": {"database": str(tenant_dir / "hs.db")}}
    else:
        assert pg is not None
        raw["database"] = {
            "name": "psycopg2",
            "args": {
                **pg.dsn_kwargs(),
                "schema": f"t{next(_schema_counter)}_{id(tmp_path) % 99999}",
            },
        }
    raw.update(overrides)
    config, _warnings = validate_config(raw, config_dir=tenant_dir)
    return config


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Harness:
    """Homeservers behind one HTTP frontend, reached by Host header."""

    client: TestClient[Any, Any]
    registry: TenantRegistry
    servers: dict[str, HomeServer] = field(default_factory=dict)
    frontend: HttpFrontend | None = None

    @property
    def hs(self) -> HomeServer:
        return next(iter(self.servers.values()))

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        body: bytes | None = None,
        token: str | None = None,
        host: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        hdrs = dict(headers or {})
        hdrs["Host"] = host or self.hs.server_name
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        data = body if body is not None else (orjson.dumps(json) if json is not None else None)
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        resp: ClientResponse = await self.client.request(method, path, data=data, headers=hdrs)
        raw = await resp.read()
        return Response(resp.status, resp.headers, raw)

    async def restart(
        self, server_name: str | None = None, *, config: HomeServerConfig | None = None
    ) -> HomeServer:
        """Shut a homeserver down and bring up a new one on the same data.

        `config` replaces its config (same server and database), as an
        operator editing the file and restarting would.
        """
        old = self.servers[server_name] if server_name else self.hs
        self.registry.remove(old.server_name)
        await old.shutdown()
        hs = HomeServer(config or old.config)
        await hs.setup()
        await hs.start()
        self.registry.add(hs)
        self.servers[old.server_name] = hs
        return hs

    async def close(self) -> None:
        await self.client.close()
        for hs in self.servers.values():
            await hs.shutdown()


async def start_harness(
    configs: list[HomeServerConfig],
    *,
    router: Router | None = None,
    single_tenant_fallback: bool = False,
    listener: ListenerConfig | None = None,
) -> Harness:
    """`router` replaces the real route table (tests that need their own endpoints).

    `listener` gives the test client's listener its options (x_forwarded, compress).
    """
    registry = TenantRegistry(single_tenant_fallback=single_tenant_fallback)
    frontend = HttpFrontend(registry, router if router is not None else build_router())
    servers: dict[str, HomeServer] = {}
    for config in configs:
        hs = HomeServer(config)
        await hs.setup()
        await hs.start()
        registry.add(hs)
        servers[config.server_name] = hs
    client: TestClient[Any, Any] = TestClient(TestServer(frontend.make_app(listener)))
    await client.start_server()
    return Harness(client, registry, servers, frontend)


class RecordingHandler(logging.Handler):
    """Keeps every record so tests can check the context each was logged in."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def matching(self, fragment: str) -> list[logging.LogRecord]:
        return [r for r in self.records if fragment in r.getMessage()]
