"""Where to reach a server name: the spec's "Resolving server names".

In order: an IP literal (port 8448 unless given); a hostname with an
explicit port; the delegation in `https://<hostname>/.well-known/matrix/server`
(whose target is resolved the same way, minus another well-known); the SRV
records `_matrix-fed._tcp.<hostname>`, then the deprecated `_matrix._tcp`;
finally `<hostname>:8448`. The `Host` header and the TLS name are the
server name or the delegated name (never an SRV target), as the spec says.

Everything fetched is bounded: the well-known body (`WELL_KNOWN_MAX_BYTES`),
its redirects (`WELL_KNOWN_MAX_REDIRECTS`), its time, and the caches (a
fixed number of names each, entries expiring as the answers say within
fixed bounds). Every request goes through the tenant's IP range filter, so
a delegation or SRV record pointing inside the network gets nowhere.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urljoin, urlsplit

import orjson

from hamlet.core.errors import InvalidIdError
from hamlet.core.ids import is_valid_server_name, parse_server_name
from hamlet.handlers.common.service import ENTRY_BYTES, ServiceBase
from hamlet.runtime.clock import Clock
from hamlet.runtime.http_client import HttpClientError, HttpResponse, IpRangeFilter
from hamlet.runtime.lru import LruCache

logger = logging.getLogger(__name__)

DEFAULT_FEDERATION_PORT = 8448
WELL_KNOWN_PORT = 443
WELL_KNOWN_PATH = "/.well-known/matrix/server"
WELL_KNOWN_MAX_BYTES = 50 * 1024
WELL_KNOWN_MAX_REDIRECTS = 5
WELL_KNOWN_TIMEOUT_S = 10.0
# How long a well-known answer (or its absence) is believed, as Synapse:
# a day unless the response says otherwise, kept within 5 minutes .. 2 days;
# a failed lookup for an hour, so an unreachable server is not asked per request.
WELL_KNOWN_DEFAULT_CACHE_S = 24 * 3600.0
WELL_KNOWN_MIN_CACHE_S = 5 * 60.0
WELL_KNOWN_MAX_CACHE_S = 48 * 3600.0
WELL_KNOWN_INVALID_CACHE_S = 3600.0
SRV_MIN_CACHE_S = 60.0
SRV_MAX_CACHE_S = 24 * 3600.0
#: Names each cache remembers at most.
CACHE_SIZE = 10_000

_MAX_AGE_RE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SrvTarget:
    host: str
    port: int
    priority: int
    weight: int


class SrvResolver(Protocol):
    async def resolve_srv(self, name: str) -> tuple[Sequence[SrvTarget], float]:
        """The SRV records of `name` and their TTL in seconds; empty if there are none."""


class HttpFetcher(Protocol):
    """The part of the process's HTTP client discovery needs."""

    async def request(
        self,
        method: str,
        url: str,
        *,
        clock: Clock,
        timeout_s: float,
        ip_filter: IpRangeFilter,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        verify_tls: bool = True,
        server_hostname: str | None = None,
        max_body_bytes: int = ...,
    ) -> HttpResponse: ...


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """Where and how to send requests for one server name."""

    #: What to connect to: an IP address (no brackets) or a hostname.
    host: str
    port: int
    #: The `Host` header.
    host_header: str
    #: The name the TLS certificate must be valid for (and SNI); None for an IP.
    tls_name: str | None

    def url(self, path_and_query: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}{path_and_query}"


def split_server_name(server_name: str) -> tuple[str, int | None]:
    """(host without brackets, port or None); ValueError if it is not a server name."""
    try:
        host, port = parse_server_name(server_name)
    except InvalidIdError as e:
        raise ValueError(str(e)) from None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{server_name!r} has an invalid port")
    return host.strip("[]"), port


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _order_srv(records: Sequence[SrvTarget]) -> list[SrvTarget]:
    """RFC 2782: lowest priority first, weighted random order within a priority."""
    ordered: list[SrvTarget] = []
    for priority in sorted({r.priority for r in records}):
        group = [r for r in records if r.priority == priority]
        while group:
            total = sum(r.weight for r in group)
            pick = random.uniform(0, total) if total else 0.0
            chosen = group[0]
            for record in group:
                pick -= record.weight
                if pick <= 0:
                    chosen = record
                    break
            ordered.append(chosen)
            group.remove(chosen)
    return ordered


class ServerDiscovery(ServiceBase):
    """Resolves server names for one tenant (its filter, TLS policy and caches)."""

    def __init__(
        self,
        http: HttpFetcher,
        srv: SrvResolver,
        clock: Clock,
        *,
        ip_filter: IpRangeFilter,
        verify_tls: bool,
        well_known_port: int = WELL_KNOWN_PORT,
    ) -> None:
        self._http = http
        self._srv = srv
        self._clock = clock
        self._ip_filter = ip_filter
        self._verify_tls = verify_tls
        self._well_known_port = well_known_port
        # name -> (delegated server name or None, expiry on the monotonic clock)
        self._well_known: LruCache[str, tuple[str | None, float]] = LruCache(CACHE_SIZE)
        self._srv_cache: LruCache[str, tuple[list[SrvTarget], float]] = LruCache(CACHE_SIZE)

    def clear_caches(self) -> None:
        self._well_known.clear()
        self._srv_cache.clear()

    def memory_usage(self) -> int:
        return ENTRY_BYTES * (len(self._well_known) + len(self._srv_cache))

    async def resolve(self, server_name: str) -> ServerAddress:
        """Where to send requests for `server_name`; ValueError if it is not a server name."""
        host, port = split_server_name(server_name)
        if _is_ip(host) or port is not None:
            return self._direct(server_name, host, port)
        delegated = await self._delegation(host)
        if delegated is not None:
            d_host, d_port = split_server_name(delegated)
            if _is_ip(d_host) or d_port is not None:
                return self._direct(delegated, d_host, d_port)
            return await self._by_srv(d_host)
        return await self._by_srv(host)

    @staticmethod
    def _direct(name: str, host: str, port: int | None) -> ServerAddress:
        return ServerAddress(
            host=host,
            port=port or DEFAULT_FEDERATION_PORT,
            host_header=name,
            tls_name=None if _is_ip(host) else host,
        )

    async def _by_srv(self, hostname: str) -> ServerAddress:
        for prefix in ("_matrix-fed._tcp.", "_matrix._tcp."):
            targets = await self._srv_lookup(prefix + hostname)
            if targets:
                target = targets[0]
                return ServerAddress(
                    host=target.host.rstrip("."),
                    port=target.port,
                    host_header=hostname,
                    tls_name=hostname,
                )
        return ServerAddress(hostname, DEFAULT_FEDERATION_PORT, hostname, hostname)

    async def _srv_lookup(self, name: str) -> list[SrvTarget]:
        now = self._clock.monotonic()
        cached = self._srv_cache.get(name)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            records, ttl = await self._srv.resolve_srv(name)
        except Exception:
            # A DNS failure is "no SRV record": the spec falls through to 8448.
            logger.info("SRV lookup of %s failed", name, exc_info=True)
            records, ttl = [], SRV_MIN_CACHE_S
        # "." as the only target means the service is decidedly not there.
        usable = [r for r in records if r.host not in (".", "")]
        ordered = _order_srv(usable)
        expiry = now + min(max(ttl, SRV_MIN_CACHE_S), SRV_MAX_CACHE_S)
        self._srv_cache.set(name, (ordered, expiry))
        return ordered

    async def _delegation(self, hostname: str) -> str | None:
        now = self._clock.monotonic()
        cached = self._well_known.get(hostname)
        if cached is not None and cached[1] > now:
            return cached[0]
        delegated, cache_s = await self._fetch_well_known(hostname)
        self._well_known.set(hostname, (delegated, now + cache_s))
        return delegated

    async def _fetch_well_known(self, hostname: str) -> tuple[str | None, float]:
        """(the delegated server name or None, how long to believe it)."""
        port = "" if self._well_known_port == WELL_KNOWN_PORT else f":{self._well_known_port}"
        url = f"https://{hostname}{port}{WELL_KNOWN_PATH}"
        try:
            response = await self._get_following_redirects(url)
        except HttpClientError as e:
            logger.info("No well-known for %s: %s", hostname, e)
            return None, WELL_KNOWN_INVALID_CACHE_S
        if response.status != 200:
            logger.info("No well-known for %s: HTTP %d", hostname, response.status)
            return None, WELL_KNOWN_INVALID_CACHE_S
        try:
            body = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            body = None
        delegated = body.get("m.server") if isinstance(body, dict) else None
        if not isinstance(delegated, str) or not is_valid_server_name(delegated):
            logger.info("Invalid well-known for %s", hostname)
            return None, WELL_KNOWN_INVALID_CACHE_S
        return delegated, _cache_period(response)

    async def _get_following_redirects(self, url: str) -> HttpResponse:
        # One deadline for the whole chain, not one per hop.
        deadline = self._clock.monotonic() + WELL_KNOWN_TIMEOUT_S
        for _ in range(WELL_KNOWN_MAX_REDIRECTS + 1):
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                raise HttpClientError("well-known redirects took too long")
            response = await self._http.request(
                "GET",
                url,
                clock=self._clock,
                timeout_s=remaining,
                ip_filter=self._ip_filter,
                verify_tls=self._verify_tls,
                max_body_bytes=WELL_KNOWN_MAX_BYTES,
            )
            location = response.headers.get("location")
            if response.status not in (301, 302, 303, 307, 308) or location is None:
                return response
            url = urljoin(url, location)
            if urlsplit(url).scheme != "https":
                raise HttpClientError(f"well-known redirected to a non-https URL {url!r}")
        raise HttpClientError(f"more than {WELL_KNOWN_MAX_REDIRECTS} well-known redirects")


def _cache_period(response: HttpResponse) -> float:
    control = response.headers.get("cache-control", "")
    if "no-store" in control.lower():
        return WELL_KNOWN_MIN_CACHE_S
    match = _MAX_AGE_RE.search(control)
    period = float(match.group(1)) if match else WELL_KNOWN_DEFAULT_CACHE_S
    return min(max(period, WELL_KNOWN_MIN_CACHE_S), WELL_KNOWN_MAX_CACHE_S)
