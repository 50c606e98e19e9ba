"""A serving process: its tenants, its listeners and its lifetime."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl
from collections.abc import Callable

from aiohttp import web

from hamlet.api.routes import build_router
from hamlet.api.server import HOST_SERVER_NAME, HttpFrontend
from hamlet.config import HomeServerConfig, HostConfig, ListenerConfig
from hamlet.host.connections import (
    ConnectionGuard,
    default_max_connections,
    raise_open_file_limit,
)
from hamlet.host.control import ControlApi
from hamlet.host.listeners import (
    SERVER_LOGGER,
    GuardedSite,
    ListenError,
    bind_sockets,
    server_tls_context,
)
from hamlet.host.log_redaction import install_redaction
from hamlet.host.manager import Closer, TenantManager
from hamlet.host.registry import OneTenantResolver, TenantRegistry
from hamlet.host.tenant import Tenant
from hamlet.runtime import tracing
from hamlet.runtime.blocking import run_file_io
from hamlet.runtime.logcontext import LoggingContext
from hamlet.runtime.memory import freeze_long_lived

logger = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The process cannot serve; the message says why in one line."""


class HostProcess:
    """Runs the homeservers of the given configs behind shared listeners.

    `configs[0]` is the main config: its listeners are the shared ones
    (Host headers pick the tenant there) and its `host` section, if any,
    turns on the control API, runtime provisioning and hibernation. The
    main homeserver failing to start is fatal; any other tenant failing is
    logged and the rest serve on.
    """

    def __init__(self, configs: list[HomeServerConfig]) -> None:
        if not configs:
            raise ValueError("no homeserver configured")
        self.main = configs[0]
        host_config = self.main.host or HostConfig(tenants_dir=self.main.config_dir / "tenants")
        single = self.main.host is None and len(configs) == 1
        self.registry = TenantRegistry(single_tenant_fallback=single)
        self.manager = TenantManager(host_config, configs, self.registry)
        self.manager.open_listener = self._open_tenant_listener
        self.frontend = HttpFrontend(self.registry, build_router())
        self._runners: list[web.AppRunner] = []
        self.bound_ports: list[int] = []
        self.control_port: int | None = None
        limits = self.main.limits
        # One guard for every listener: the file descriptors are the process's.
        # Without a configured cap it is set from the open-file limit at start().
        self.connections = ConnectionGuard(
            self.manager.clock,
            max_connections=limits.max_connections or 0,
            max_per_ip=limits.max_connections_per_ip,
            header_timeout_s=limits.http_header_timeout_ms / 1000,
        )
        self._keepalive_timeout_s = limits.http_keepalive_timeout_ms / 1000
        self._tls: ssl.SSLContext | None = None

    async def start(self) -> None:
        # Also here, not only in setup_logging: an embedding program may
        # configure logging its own way, and still no token may be logged.
        install_redaction()
        with LoggingContext("startup", HOST_SERVER_NAME):
            if self.main.limits.max_connections is None:
                self.connections.max_connections = default_max_connections(raise_open_file_limit())
            listeners: list[tuple[ListenerConfig, list[socket.socket]]] = []
            host = self.main.host
            control_sockets: list[socket.socket] = []
            try:
                self._start_tracing()
                # Every port is bound before any database is opened or migrated.
                for listener in self.main.listeners:
                    listeners.append((listener, self._bind(listener)))
                if any(listener.tls for listener in self.main.listeners):
                    self._tls = await self._load_tls()
                if host is not None and host.control_port is not None:
                    address, port = host.control_bind_address, host.control_port
                    control_sockets = self._bind_address(address, port)
                await self.manager.start()
                if self.registry.get_tenant(self.main.server_name) is None:
                    failure = self.manager.start_failures.get(self.main.server_name, "see the log")
                    raise StartupError(
                        f"the main homeserver {self.main.server_name} failed to start: {failure}"
                    )
                for listener, sockets in listeners:
                    await self._listen(listener, sockets)
                if control_sockets:
                    assert host is not None and host.control_secret is not None
                    control = ControlApi(self.manager, host.control_secret)
                    ports = await self._serve(control.make_app(), control_sockets)
                    self.control_port = ports[0]
                    logger.info("Control API on http://%s:%d", host.control_bind_address, ports[0])
            except BaseException:
                await self.stop()
                for _listener, sockets in listeners:
                    _close(sockets)
                _close(control_sockets)
                raise

    def _bind(self, listener: ListenerConfig) -> list[socket.socket]:
        sockets: list[socket.socket] = []
        try:
            for address in listener.bind_addresses:
                sockets += self._bind_address(address, listener.port)
        except BaseException:
            _close(sockets)
            raise
        return sockets

    @staticmethod
    def _bind_address(address: str, port: int) -> list[socket.socket]:
        try:
            return bind_sockets(address, port)
        except ListenError as e:
            raise StartupError(str(e)) from None

    def _start_tracing(self) -> None:
        # Here, in the serving process's loop: the SDK's export thread must
        # not exist before a daemon forks.
        config = self.main.opentracing
        if not config.enabled:
            return
        tracing.init(
            sample_rate=config.sample_rate,
            servers=config.homeserver_whitelist,
            endpoint=config.otlp_endpoint,
            service_name=config.service_name,
        )
        logger.info("Tracing to %s (sample rate %s)", config.otlp_endpoint, config.sample_rate)

    async def _load_tls(self) -> ssl.SSLContext:
        transport = self.main.federation_transport
        # validate_config refuses a TLS listener without both files.
        assert transport.tls_certificate_path is not None
        assert transport.tls_private_key_path is not None
        try:
            return await run_file_io(
                server_tls_context, transport.tls_certificate_path, transport.tls_private_key_path
            )
        except ListenError as e:
            raise StartupError(str(e)) from None

    async def _listen(self, listener: ListenerConfig, sockets: list[socket.socket]) -> None:
        tls = self._tls if listener.tls else None
        ports = await self._serve(self.frontend.make_app(listener), sockets, tls)
        self.bound_ports.extend(ports)
        for port in ports:
            logger.info("Listening on port %d", port)

    async def _runner(
        self,
        app: web.Application,
        sockets: list[socket.socket],
        tls: ssl.SSLContext | None = None,
    ) -> web.AppRunner:
        # handler_cancellation: a client that goes away cancels its request
        # (logged 499), so an abandoned long-poll holds no tenant open.
        runner = web.AppRunner(
            app,
            access_log=None,
            keepalive_timeout=self._keepalive_timeout_s,
            handler_cancellation=True,
            logger=SERVER_LOGGER,
        )
        await runner.setup()
        for sock in sockets:
            await GuardedSite(runner, sock, self.connections, tls).start()
        return runner

    async def _serve(
        self,
        app: web.Application,
        sockets: list[socket.socket],
        tls: ssl.SSLContext | None = None,
    ) -> list[int]:
        runner = await self._runner(app, sockets, tls)
        self._runners.append(runner)
        return [int(sockname[1]) for sockname in runner.addresses]

    async def _open_tenant_listener(
        self, tenant: Tenant, address: str, port: int
    ) -> tuple[int, Closer]:
        frontend = HttpFrontend(OneTenantResolver(tenant), self.frontend.router)
        sockets = bind_sockets(address, port)
        try:
            runner = await self._runner(frontend.make_app(), sockets)
        except BaseException:
            _close(sockets)
            raise
        bound = int(runner.addresses[0][1])
        logger.info("Tenant %s has its own listener on port %d", tenant.server_name, bound)
        return bound, runner.cleanup

    async def stop(self) -> None:
        with LoggingContext("shutdown", HOST_SERVER_NAME):
            for runner in self._runners:
                await runner.cleanup()
            self._runners.clear()
            await self.manager.stop()
            if self.main.opentracing.enabled:
                await tracing.aclose()  # exports what is still queued

    async def serve_forever(self, on_started: Callable[[], None] | None = None) -> None:
        await self.start()
        if self.manager.host_config.hibernate_after_ms > 0:
            # Persisted tenants came back hibernated: what is alive now is
            # the process's for good (static tenants' first homeservers aside).
            freeze_long_lived()
        if on_started is not None:
            on_started()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await self.stop()


def _close(sockets: list[socket.socket]) -> None:
    """Close sockets no server took over (closing a served one again is harmless)."""
    for sock in sockets:
        sock.close()
