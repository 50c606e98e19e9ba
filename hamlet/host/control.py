"""The control API: provisioning and /metrics, on the host's own listener.

Every call needs `Authorization: Bearer <host.control.secret>`; answers are
JSON (`errcode`/`error` on failure, like the Matrix APIs).
"""

from __future__ import annotations

import hmac
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from hamlet.api.server import HOST_SERVER_NAME
from hamlet.host.manager import TenantError, TenantManager
from hamlet.host.metrics import refresh_counts, render_metrics, tenant_summary
from hamlet.runtime.logcontext import LoggingContext

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: How a refused provisioning call reads, as a Matrix API would put it.
_ERRCODES = {400: "M_INVALID_PARAM", 404: "M_NOT_FOUND"}
#: The most tenants one page of `GET /tenants` may ask for.
MAX_PAGE = 1000


def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _error(status: int, errcode: str, message: str, **extra: Any) -> web.Response:
    return _json(status, {"errcode": errcode, "error": message, **extra})


def _int_param(
    request: web.Request, name: str, default: int | None, low: int, high: int | None
) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise TenantError(400, f"{name} must be a non-negative integer")
    value = int(raw)
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise TenantError(400, f"{name} must be {bounds}")
    return value


class ControlApi:
    def __init__(self, manager: TenantManager, secret: str) -> None:
        self.manager = manager
        self._secret = secret.encode()
        self._counter = itertools.count(1)

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/tenants", self.list_tenants)
        app.router.add_post("/tenants", self.add_tenant)
        app.router.add_get("/tenants/{name}", self.show_tenant)
        app.router.add_delete("/tenants/{name}", self.remove_tenant)
        app.router.add_post("/tenants/{name}/suspend", self.suspend)
        app.router.add_post("/tenants/{name}/resume", self.resume)
        app.router.add_get("/metrics", self.metrics)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        name = f"control-{request.method}-{next(self._counter)}"
        with LoggingContext(name, HOST_SERVER_NAME, request=name):
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                token.strip().encode(), self._secret
            ):
                logger.warning("Refused control request without the right secret: %s", request.path)
                return _error(401, "M_UNKNOWN_TOKEN", "Bad or missing control secret")
            try:
                response = await handler(request)
            except TenantError as e:
                response = _error(
                    e.status, _ERRCODES.get(e.status, "M_UNKNOWN"), str(e), errors=e.errors
                )
            except web.HTTPException as e:
                response = _error(e.status, "M_UNRECOGNIZED", e.reason)
            except Exception:
                logger.exception("Control request failed")
                response = _error(500, "M_UNKNOWN", "Internal error")
            logger.info("%s %s -> %d", request.method, request.path, response.status)
            return response

    async def list_tenants(self, request: web.Request) -> web.Response:
        """Tenants by name; `from` (an offset) and `limit` page them as Synapse's admin lists.

        Without `limit`, every tenant from `from` on (the answer of old).
        `next_token` is there when more follow, `total` always.
        """
        start = _int_param(request, "from", 0, 0, None) or 0
        limit = _int_param(request, "limit", None, 1, MAX_PAGE)
        everyone = sorted(self.manager.registry.tenants(), key=lambda t: t.server_name)
        end = len(everyone) if limit is None else min(len(everyone), start + limit)
        page = everyone[start:end]
        for tenant in page:
            await refresh_counts(tenant)
        now = self.manager.clock.monotonic()
        body: dict[str, Any] = {
            "tenants": [tenant_summary(t, now) for t in page],
            "total": len(everyone),
        }
        if end < len(everyone):
            body["next_token"] = str(end)
        return _json(200, body)

    async def show_tenant(self, request: web.Request) -> web.Response:
        tenant = self.manager.registry.get_tenant(request.match_info["name"])
        if tenant is None:
            return _error(404, "M_NOT_FOUND", "No such tenant")
        await refresh_counts(tenant)
        return _json(200, tenant_summary(tenant, self.manager.clock.monotonic()))

    async def add_tenant(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "M_NOT_JSON", "Body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("server_name"), str):
            return _error(400, "M_BAD_JSON", "server_name (a string) is required")
        overrides = body.get("config") or {}
        if not isinstance(overrides, dict):
            return _error(400, "M_BAD_JSON", "config must be an object")
        listen = body.get("listen")
        listen_at: tuple[str, int] | None = None
        if listen is not None:
            port = listen.get("port") if isinstance(listen, dict) else None
            address = listen.get("bind_address", "127.0.0.1") if isinstance(listen, dict) else None
            if not isinstance(port, int) or isinstance(port, bool) or not isinstance(address, str):
                return _error(400, "M_BAD_JSON", "listen must be {port, bind_address}")
            if not 0 <= port <= 65535:
                return _error(400, "M_INVALID_PARAM", "listen.port must be between 0 and 65535")
            listen_at = (address, port)
        started = time.monotonic()
        tenant = await self.manager.add(body["server_name"], overrides, listen=listen_at)
        summary = tenant_summary(tenant, self.manager.clock.monotonic())
        summary["provision_ms"] = round((time.monotonic() - started) * 1000, 2)
        port = self.manager.listen_ports.get(tenant.server_name.lower())
        if port is not None:
            summary["listen_port"] = port
        return _json(200, summary)

    async def remove_tenant(self, request: web.Request) -> web.Response:
        purge = request.query.get("purge", "false").lower() in ("1", "true", "yes")
        await self.manager.remove(request.match_info["name"], purge=purge)
        return _json(200, {"removed": request.match_info["name"], "purged": purge})

    async def suspend(self, request: web.Request) -> web.Response:
        await self.manager.suspend(request.match_info["name"])
        return _json(200, {"state": "suspended"})

    async def resume(self, request: web.Request) -> web.Response:
        await self.manager.resume(request.match_info["name"])
        return _json(200, {"state": "active"})

    async def metrics(self, request: web.Request) -> web.Response:
        body = await render_metrics(self.manager)
        return web.Response(body=body, content_type="text/plain", charset="utf-8")
