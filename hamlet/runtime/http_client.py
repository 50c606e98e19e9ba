"""The process's one outbound HTTP client: pooled connections, bounded answers, filtered addresses.

Every tenant's outbound requests share one pool of connections, so the
process's sockets do not grow with its tenants. Three things callers can
rely on whatever the remote end does:

- **Addresses are filtered when connecting.** A hostname is resolved, then
  every address a range filter refuses is dropped before any connection is
  made, so a name that resolves (or rebinds) to an internal address never
  reaches it; an IP literal is checked before the request. Pools are kept
  per filter, so a connection opened under a lenient filter is never reused
  under a strict one.
- **Time is bounded** by a deadline on the caller's Clock (`with_timeout`),
  covering connecting, waiting and reading the body; the timeout is raised
  in the caller's task and logging context.
- **Size is bounded**: a body larger than `max_body_bytes` is cut off and
  refused, never buffered whole.

Redirects are never followed here: the caller decides whether a `Location`
is worth another (filtered, bounded) request. Nothing here knows Matrix.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from hamlet.runtime.clock import Clock
from hamlet.runtime.timeout import with_timeout

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Connections the whole process keeps open at most, and per remote host:port.
MAX_CONNECTIONS = 200
MAX_CONNECTIONS_PER_HOST = 20
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
_READ_CHUNK = 64 * 1024

#: Blocked whatever the configuration says, as in Synapse: "any address".
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
    """Which addresses outbound connections may reach.

    An address in `whitelist` is allowed; otherwise one in `blacklist` is
    refused (Synapse's semantics). IPv4-mapped IPv6 addresses are judged as
    the IPv4 address they carry.
    """

    blacklist: tuple[IpNetwork, ...] = ()
    whitelist: tuple[IpNetwork, ...] = ()

    @classmethod
    def parse(cls, blacklist: Iterable[str], whitelist: Iterable[str] = ()) -> IpRangeFilter:
        """From CIDR strings; ValueError names the first bad one."""
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


ALLOW_ALL = IpRangeFilter()


class FilteringResolver(AbstractResolver):
    """Resolves with `base`, then drops every address the filter refuses."""

    def __init__(self, base: AbstractResolver, ip_filter: IpRangeFilter) -> None:
        self._base = base
        self._filter = ip_filter

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._base.resolve(host, port, family)
        allowed = [r for r in results if self._filter.allows(r["host"])]
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


ResolverFactory = Callable[[], AbstractResolver]


def is_ip_literal(host: str) -> bool:
    """An IPv4 or IPv6 address (in brackets or not), not a name."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class HttpClient:
    """One per process (the host owns it and closes it at shutdown)."""

    def __init__(
        self,
        *,
        max_connections: int = MAX_CONNECTIONS,
        max_connections_per_host: int = MAX_CONNECTIONS_PER_HOST,
        resolver_factory: ResolverFactory = aiohttp.ThreadedResolver,
    ) -> None:
        self._max_connections = max_connections
        self._max_per_host = max_connections_per_host
        self._resolver_factory = resolver_factory
        self._sessions: dict[IpRangeFilter, aiohttp.ClientSession] = {}
        self._closed = False

    def _session(self, ip_filter: IpRangeFilter) -> aiohttp.ClientSession:
        session = self._sessions.get(ip_filter)
        if session is None:
            if self._closed:
                raise HttpClientError("the HTTP client is closed")
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=self._max_per_host,
                resolver=FilteringResolver(self._resolver_factory(), ip_filter),
            )
            session = aiohttp.ClientSession(
                connector=connector,
                # Deadlines come from the caller's clock; proxies from the
                # environment would bypass the address filter.
                timeout=aiohttp.ClientTimeout(total=None),
                trust_env=False,
                auto_decompress=True,
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
        verify_tls: bool = True,
        server_hostname: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> HttpResponse:
        """Send one request and read its whole (bounded) response.

        `url` must already be percent-encoded; it is sent as it is.
        `server_hostname` is the TLS name (SNI and certificate check) when
        it differs from the URL's host, as after an SRV lookup. Raises a
        subclass of `HttpClientError` for anything but a complete response;
        any status code is a response.
        """
        try:
            host = URL(url, encoded=True).host or ""
        except ValueError as e:
            raise ConnectionFailedError(f"bad URL {url!r}") from e
        if is_ip_literal(host) and not ip_filter.allows(host.strip("[]")):
            raise BlockedAddressError(f"address {host} is blocked")
        try:
            return await with_timeout(
                self._exchange(
                    method,
                    url,
                    ip_filter,
                    headers,
                    body,
                    verify_tls,
                    server_hostname,
                    max_body_bytes,
                ),
                timeout_s,
                clock,
            )
        except TimeoutError as e:
            raise RequestTimedOutError(f"{method} {url}: no response in {timeout_s}s") from e

    async def _exchange(
        self,
        method: str,
        url: str,
        ip_filter: IpRangeFilter,
        headers: Mapping[str, str] | None,
        body: bytes | None,
        verify_tls: bool,
        server_hostname: str | None,
        max_body_bytes: int,
    ) -> HttpResponse:
        session = self._session(ip_filter)
        options: dict[str, Any] = {"allow_redirects": False, "ssl": verify_tls}
        if server_hostname is not None:
            options["server_hostname"] = server_hostname
        try:
            # Sent exactly as given: a signed request's URI must not be re-quoted.
            target = URL(url, encoded=True)
            async with session.request(
                method, target, headers=dict(headers or {}), data=body, **options
            ) as resp:
                declared = resp.content_length
                if declared is not None and declared > max_body_bytes:
                    raise ResponseTooLargeError(f"{url}: body of {declared} bytes")
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(_READ_CHUNK):
                    size += len(chunk)
                    if size > max_body_bytes:
                        raise ResponseTooLargeError(f"{url}: body over {max_body_bytes} bytes")
                    chunks.append(chunk)
                result: dict[str, str] = {}
                for name, value in resp.headers.items():
                    result.setdefault(name.lower(), value)
                return HttpResponse(resp.status, result, b"".join(chunks))
        except HttpClientError:
            raise
        except (aiohttp.ClientError, OSError, ssl.SSLError, ValueError) as e:
            raise ConnectionFailedError(f"{method} {url}: {e!r}") from e

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        self._closed = True
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for session in sessions:
            await session.close()
