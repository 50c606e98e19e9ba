"""The tenants of this process, and which one a Host header names."""

from __future__ import annotations

import logging

from hamlet.config import HomeServerConfig
from hamlet.config.tenants import routing_hosts
from hamlet.homeserver import HomeServer
from hamlet.host.tenant import RequestStats, Tenant

logger = logging.getLogger(__name__)


class HostTaken(ValueError):
    """A tenant would answer a Host another tenant already answers."""


class TenantRegistry:
    def __init__(self, *, single_tenant_fallback: bool = False) -> None:
        # With one configured homeserver, every request goes to it whatever
        # Host it names (how a plain single-server install is reached).
        self.single_tenant_fallback = single_tenant_fallback
        self._by_name: dict[str, Tenant] = {}
        self._by_host: dict[str, Tenant] = {}
        # Requests naming no tenant (answered 404 M_UNRECOGNIZED).
        self.unrouted = RequestStats()

    def add(self, hs: HomeServer) -> Tenant:
        """Register a homeserver that is already running."""
        tenant = Tenant(hs.config, hs, hs.clock)
        self.add_tenant(tenant)
        return tenant

    def add_tenant(self, tenant: Tenant) -> None:
        name = tenant.server_name.lower()
        if name in self._by_name:
            raise ValueError(f"tenant {tenant.server_name} already exists")
        clashes = self.host_clashes(tenant.config)
        if clashes:
            raise HostTaken("; ".join(clashes))
        self._by_name[name] = tenant
        for host in routing_hosts(tenant.config):
            self._by_host[host] = tenant

    def host_clashes(self, config: HomeServerConfig) -> list[str]:
        """Why `config` may not be routed here: the Hosts another tenant answers."""
        return [
            f"host {host!r} is served by {owner.server_name}"
            for host in sorted(routing_hosts(config))
            if (owner := self._by_host.get(host)) is not None
            and owner.server_name.lower() != config.server_name.lower()
        ]

    def remove(self, server_name: str) -> HomeServer | None:
        tenant = self.remove_tenant(server_name)
        return tenant.hs if tenant is not None else None

    def remove_tenant(self, server_name: str) -> Tenant | None:
        tenant = self._by_name.pop(server_name.lower(), None)
        if tenant is not None:
            for host in routing_hosts(tenant.config):
                if self._by_host.get(host) is tenant:
                    del self._by_host[host]
        return tenant

    def get(self, server_name: str) -> HomeServer | None:
        tenant = self._by_name.get(server_name.lower())
        return tenant.hs if tenant is not None else None

    def get_tenant(self, server_name: str) -> Tenant | None:
        return self._by_name.get(server_name.lower())

    def all(self) -> list[HomeServer]:
        return [t.hs for t in self._by_name.values() if t.hs is not None]

    def tenants(self) -> list[Tenant]:
        return list(self._by_name.values())

    def resolve(self, host: str | None) -> Tenant | None:
        tenant = self._by_host.get(host) if host is not None else None
        if tenant is None and self.single_tenant_fallback and len(self._by_name) == 1:
            return next(iter(self._by_name.values()))
        return tenant

    def __len__(self) -> int:
        return len(self._by_name)


class OneTenantResolver:
    """For a listener of a tenant's own: every request there goes to it."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        # Stays empty: this resolver routes everything.
        self.unrouted = RequestStats()

    def resolve(self, host: str | None) -> Tenant | None:
        return self.tenant
