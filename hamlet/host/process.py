"""A serving process: its tenants, its listeners and its lifetime."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from hamlet.api.routes import build_router
from hamlet.api.server import HOST_SERVER_NAME, HttpFrontend
from hamlet.config import HomeServerConfig, ListenerConfig
from hamlet.homeserver import HomeServer
from hamlet.host.registry import TenantRegistry
from hamlet.runtime.logcontext import LoggingContext

logger = logging.getLogger(__name__)


class HostProcess:
    """Runs the homeservers of the given configs behind shared listeners.

    The first config's listeners are the shared ones; Host headers pick
    the tenant there.
    """

    def __init__(self, configs: list[HomeServerConfig]) -> None:
        if not configs:
            raise ValueError("no homeserver configured")
        self.configs = configs
        self.registry = TenantRegistry(single_tenant_fallback=len(configs) == 1)
        self.frontend = HttpFrontend(self.registry, build_router())
        self._runners: list[web.AppRunner] = []
        self.bound_ports: list[int] = []

    async def start(self) -> None:
        with LoggingContext("startup", HOST_SERVER_NAME):
            try:
                for config in self.configs:
                    hs = HomeServer(config)
                    await hs.setup()
                    self.registry.add(hs)
                    await hs.start()
                for listener in self.configs[0].listeners:
                    await self._listen(listener)
            except BaseException:
                await self.stop()
                raise

    async def _listen(self, listener: ListenerConfig) -> None:
        runner = web.AppRunner(self.frontend.make_app(), access_log=None)
        await runner.setup()
        self._runners.append(runner)
        for address in listener.bind_addresses:
            site = web.TCPSite(runner, address, listener.port)
            await site.start()
        for sockname in runner.addresses:
            self.bound_ports.append(int(sockname[1]))
            logger.info("Listening on http://%s:%d", sockname[0], sockname[1])

    async def stop(self) -> None:
        with LoggingContext("shutdown", HOST_SERVER_NAME):
            for runner in self._runners:
                await runner.cleanup()
            self._runners.clear()
            for hs in self.registry.all():
                self.registry.remove(hs.server_name)
                await hs.shutdown()

    async def serve_forever(self) -> None:
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await self.stop()
