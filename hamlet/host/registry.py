"""The tenants of this process, and which one a Host header names."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from hamlet.api.server import strip_port
from hamlet.homeserver import HomeServer

logger = logging.getLogger(__name__)


class TenantRegistry:
    def __init__(self, *, single_tenant_fallback: bool = False) -> None:
        # With one configured homeserver, every request goes to it whatever
        # Host it names (how a plain single-server install is reached).
        self.single_tenant_fallback = single_tenant_fallback
        self._by_name: dict[str, HomeServer] = {}
        self._by_host: dict[str, HomeServer] = {}

    def add(self, hs: HomeServer) -> None:
        name = hs.server_name.lower()
        if name in self._by_name:
            raise ValueError(f"tenant {hs.server_name} already exists")
        self._by_name[name] = hs
        for host in self._hosts_of(hs):
            self._by_host[host] = hs

    def remove(self, server_name: str) -> HomeServer | None:
        hs = self._by_name.pop(server_name.lower(), None)
        if hs is not None:
            for host in self._hosts_of(hs):
                if self._by_host.get(host) is hs:
                    del self._by_host[host]
        return hs

    @staticmethod
    def _hosts_of(hs: HomeServer) -> set[str]:
        hosts = {strip_port(hs.server_name) or hs.server_name.lower()}
        baseurl_host = urlsplit(hs.config.public_baseurl).hostname
        if baseurl_host:
            hosts.add(baseurl_host.lower())
        return hosts

    def get(self, server_name: str) -> HomeServer | None:
        return self._by_name.get(server_name.lower())

    def all(self) -> list[HomeServer]:
        return list(self._by_name.values())

    def resolve(self, host: str | None) -> HomeServer | None:
        hs = self._by_host.get(host) if host is not None else None
        if hs is None and self.single_tenant_fallback and len(self._by_name) == 1:
            return next(iter(self._by_name.values()))
        return hs
