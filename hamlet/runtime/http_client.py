"""Outbound HTTP: bounded in time and size, and only to addresses a filter allows.

The address filter is applied when connecting: a hostname is resolved, and
every address the filter refuses is dropped before a connection is opened,
so a name that resolves (or rebinds) to an internal address never reaches
it; an IP literal is checked before anything is sent. Redirects are never
followed. The deadline runs on the caller's Clock. Nothing here knows Matrix.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from hamlet.runtime.clock import Clock
from hamlet.runtime.timeout import with_timeout

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
_READ_CHUNK = 64 * 1024
#: Refused whatever the configuration says (Synapse: "any address").
ALWAYS_BLOCKED: tuple[str, ...] = ("0.0.0.0/32", "::/128")


class HttpClientError(Exception):
    """An outbound request that produced no usable response."""


class BlockedAddressError(HttpClientError):
    """Every address of the destination is refused by the IP range filter."""


class ResponseTooLargeError(HttpClientError):
    """The response body is larger than the caller accepts."""


class RequestTimedOutError(HttpClientError):
    """No complete response within the deadline."""


class ConnectionFailedError(HttpClientError):
    """DNS, TCP, TLS or HTTP framing failed."""


@dataclass(frozen=True, slots=True)
class IpRangeFilter:
    """An address in `whitelist` is allowed; otherwise one in `blacklist` is
    refused (Synapse's semantics). An IPv4-mapped IPv6 address is judged as
    the IPv4 address it carries."""

    blacklist: tuple[IpNetwork, ...] = ()
    whitelist: tuple[IpNetwork, ...] = ()

    @classmethod
    def parse(cls, blacklist: Iterable[str], whitelist: Iterable[str] = ()) -> IpRangeFilter:
        return cls(
            tuple(ipaddress.ip_network(n, strict=False) for n in (*ALWAYS_BLOCKED, *blacklist)),
            tuple(ipaddress.ip_network(n, strict=False) for n in whitelist),
        )

    def allows(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.whitelist):
            return True
        return not any(ip in net for net in self.blacklist)


class _FilteringResolver(AbstractResolver):
    def __init__(self, base: AbstractResolver, ip_filter: IpRangeFilter) -> None:
        self._base = base
        self._filter = ip_filter

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        resolved = await self._base.resolve(host, port, family)
        allowed = [r for r in resolved if self._filter.allows(r["host"])]
        if not allowed:
            raise BlockedAddressError(f"every address of {host} is blocked")
        return allowed

    async def close(self) -> None:
        await self._base.close()


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    #: Header names lower-cased; a repeated header keeps its first value.
    headers: Mapping[str, str]
    body: bytes


def _host_literal(url: URL) -> str | None:
    host = (url.host or "").strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host


class HttpClient:
    """Pooled connections, one pool per address filter (a connection opened
    under a lenient filter is never reused under a strict one)."""

    def __init__(self, *, max_connections: int = 100, max_connections_per_host: int = 10) -> None:
        self._limit = max_connections
        self._limit_per_host = max_connections_per_host
        self._sessions: dict[IpRangeFilter, aiohttp.ClientSession] = {}
        self._closed = False

    def _session(self, ip_filter: IpRangeFilter) -> aiohttp.ClientSession:
        session = self._sessions.get(ip_filter)
        if session is None:
            if self._closed:
                raise HttpClientError("the HTTP client is closed")
            connector = aiohttp.TCPConnector(
                limit=self._limit,
                limit_per_host=self._limit_per_host,
                resolver=_FilteringResolver(aiohttp.ThreadedResolver(), ip_filter),
            )
            # No proxies from the environment: they would bypass the filter.
            session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None), trust_env=False
            )
            self._sessions[ip_filter] = session
        return session

    async def request(
        self,
        method: str,
        url: str,
        *,
        clock: Clock,
        timeout_s: float,
        ip_filter: IpRangeFilter,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> HttpResponse:
        """One request and its whole (bounded) response; any status is a
        response, anything else raises a subclass of `HttpClientError`."""
        try:
            target = URL(url)
        except ValueError as e:
            raise ConnectionFailedError(f"bad URL {url!r}") from e
        literal = _host_literal(target)
        if literal is not None and not ip_filter.allows(literal):
            raise BlockedAddressError(f"address {literal} is blocked")
        try:
            return await with_timeout(
                self._exchange(method, target, ip_filter, headers, body, max_body_bytes),
                timeout_s,
                clock,
            )
        except TimeoutError as e:
            raise RequestTimedOutError(f"{method} {url}: no response in {timeout_s}s") from e

    async def _exchange(
        self,
        method: str,
        url: URL,
        ip_filter: IpRangeFilter,
        headers: Mapping[str, str] | None,
        body: bytes | None,
        max_body_bytes: int,
    ) -> HttpResponse:
        session = self._session(ip_filter)
        try:
            async with session.request(
                method, url, headers=dict(headers or {}), data=body, allow_redirects=False
            ) as resp:
                if resp.content_length is not None and resp.content_length > max_body_bytes:
                    raise ResponseTooLargeError(f"{url}: body of {resp.content_length} bytes")
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(_READ_CHUNK):
                    size += len(chunk)
                    if size > max_body_bytes:
                        raise ResponseTooLargeError(f"{url}: body over {max_body_bytes} bytes")
                    chunks.append(chunk)
                found: dict[str, str] = {}
                for name, value in resp.headers.items():
                    found.setdefault(name.lower(), value)
                return HttpResponse(resp.status, found, b"".join(chunks))
        except HttpClientError:
            raise
        except (aiohttp.ClientError, OSError, ValueError) as e:
            raise ConnectionFailedError(f"{method} {url}: {e!r}") from e

    async def close(self) -> None:
        self._closed = True
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for session in sessions:
            await session.close()
