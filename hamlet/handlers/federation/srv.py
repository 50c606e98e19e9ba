"""SRV lookups through dnspython's asyncio resolver (runs in the caller's task).

dnspython (6 MB resident) is imported on the first lookup: a tenant that
never federates with a server lacking .well-known never loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from hamlet.handlers.federation.discovery import SrvTarget

if TYPE_CHECKING:
    import dns.asyncresolver

#: Seconds one lookup may take, retries included.
SRV_LIFETIME_S = 5.0


class DnsSrvResolver:
    """The system's resolvers (read on first use, not at build time), or the given ones."""

    def __init__(self, nameservers: Sequence[str] = (), port: int = 53) -> None:
        self._nameservers = list(nameservers)
        self._port = port
        self._resolver: dns.asyncresolver.Resolver | None = None

    def _get_resolver(self) -> dns.asyncresolver.Resolver:
        import dns.asyncresolver

        if self._resolver is None:
            if self._nameservers:
                resolver = dns.asyncresolver.Resolver(configure=False)
                resolver.nameservers = self._nameservers
                resolver.port = self._port
            else:
                resolver = dns.asyncresolver.Resolver()
            self._resolver = resolver
        return self._resolver

    async def resolve_srv(self, name: str) -> tuple[Sequence[SrvTarget], float]:
        import dns.rdatatype
        import dns.resolver

        try:
            resolver = self._get_resolver()
            answer = await resolver.resolve(name, dns.rdatatype.SRV, lifetime=SRV_LIFETIME_S)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return [], 0.0
        rrset = answer.rrset
        if rrset is None:
            return [], 0.0
        targets = [
            SrvTarget(
                host=rdata.target.to_text(omit_final_dot=True),
                port=int(rdata.port),
                priority=int(rdata.priority),
                weight=int(rdata.weight),
            )
            for rdata in rrset
        ]
        return targets, float(rrset.ttl)
