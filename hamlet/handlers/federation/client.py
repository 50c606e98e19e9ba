"""A tenant's outbound federation requests: discovered, signed, capped and bounded.

Each request is signed with the tenant's key (X-Matrix), sent over the
process's one HTTP client through the tenant's IP range filter and TLS
policy, and waits for at most the tenant's timeout (`federation.client_timeout`
unless the caller gives one), queueing for a slot included. The tenant has
at most `limits.max_concurrent_federation_requests` requests in flight, so
one with an unreachable destination cannot hold the process's connections.

Outcomes are typed: a JSON object (2xx), `RemoteMatrixError` (the remote
server answered with an error status), `FederationUnavailableError` (no
usable answer: unreachable, refused address, timeout, too large, not JSON)
or `FederationDeniedError` (the destination is not in
`federation_domain_whitelist`). Callers decide what each means to their user.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import orjson

import hamlet
from hamlet.config import FederationTransportConfig
from hamlet.core.canonical_json import JsonDict
from hamlet.core.crypto import SigningKey
from hamlet.core.xmatrix import sign_request
from hamlet.handlers.federation.discovery import HttpFetcher, ServerDiscovery
from hamlet.runtime.clock import Clock
from hamlet.runtime.http_client import HttpClientError, IpRangeFilter
from hamlet.runtime.timeout import with_timeout

logger = logging.getLogger(__name__)

#: The largest response accepted (a /send_join answer for a big room is large).
MAX_RESPONSE_BYTES = 100 * 1024 * 1024
USER_AGENT = f"Hamlet/{hamlet.__version__}"

QueryArgs = Mapping[str, str | list[str]]


class FederationRequestError(Exception):
    """A federation request that did not produce the JSON object asked for."""

    def __init__(self, destination: str, message: str) -> None:
        super().__init__(f"{destination}: {message}")
        self.destination = destination


class RemoteMatrixError(FederationRequestError):
    """The remote server answered with a non-2xx status (usually a Matrix error)."""

    def __init__(
        self, destination: str, status: int, errcode: str | None, error: str | None, body: Any
    ) -> None:
        super().__init__(destination, f"HTTP {status} {errcode or ''} {error or ''}".strip())
        self.status = status
        self.errcode = errcode
        self.error = error
        self.body = body


class FederationUnavailableError(FederationRequestError):
    """No usable answer: network failure, blocked address, timeout, oversize or not JSON."""


class FederationDeniedError(FederationRequestError):
    """The destination is not in `federation_domain_whitelist`."""


class FederationClient:
    """Outbound federation for one tenant, over the process's shared HTTP client."""

    def __init__(
        self,
        *,
        server_name: str,
        signing_key: SigningKey,
        http: HttpFetcher,
        discovery: ServerDiscovery,
        clock: Clock,
        transport: FederationTransportConfig,
        domain_whitelist: frozenset[str] | None,
        client_timeout_ms: int,
        max_concurrent: int,
    ) -> None:
        self._server_name = server_name
        self._signing_key = signing_key
        self._http = http
        self._discovery = discovery
        self._clock = clock
        self._verify_tls = transport.verify_certificates
        self._ip_filter = federation_ip_filter(transport)
        self._domain_whitelist = domain_whitelist
        self._client_timeout_ms = client_timeout_ms
        self._slots = asyncio.Semaphore(max_concurrent)
        #: Requests holding a slot now.
        self.in_flight = 0

    async def get_json(
        self,
        destination: str,
        path: str,
        args: QueryArgs | None = None,
        *,
        timeout_ms: int | None = None,
    ) -> JsonDict:
        return await self._request("GET", destination, path, args, None, timeout_ms)

    async def put_json(
        self,
        destination: str,
        path: str,
        body: JsonDict,
        *,
        args: QueryArgs | None = None,
        timeout_ms: int | None = None,
    ) -> JsonDict:
        return await self._request("PUT", destination, path, args, body, timeout_ms)

    async def post_json(
        self,
        destination: str,
        path: str,
        body: JsonDict,
        *,
        args: QueryArgs | None = None,
        timeout_ms: int | None = None,
    ) -> JsonDict:
        return await self._request("POST", destination, path, args, body, timeout_ms)

    def _check_allowed(self, destination: str) -> None:
        whitelist = self._domain_whitelist
        if whitelist is not None and destination not in whitelist:
            raise FederationDeniedError(destination, "not in federation_domain_whitelist")

    async def _request(
        self,
        method: str,
        destination: str,
        path: str,
        args: QueryArgs | None,
        body: JsonDict | None,
        timeout_ms: int | None,
    ) -> JsonDict:
        self._check_allowed(destination)
        if not path.startswith("/"):
            raise ValueError(f"federation path must start with '/': {path!r}")
        timeout_s = (timeout_ms if timeout_ms is not None else self._client_timeout_ms) / 1000
        deadline = self._clock.monotonic() + timeout_s
        try:
            await with_timeout(self._slots.acquire(), timeout_s, self._clock)
        except TimeoutError:
            raise FederationUnavailableError(
                destination, f"no free outbound slot within {timeout_s}s"
            ) from None
        self.in_flight += 1
        try:
            return await self._send(method, destination, path, args, body, deadline)
        finally:
            self.in_flight -= 1
            self._slots.release()

    async def _send(
        self,
        method: str,
        destination: str,
        path: str,
        args: QueryArgs | None,
        body: JsonDict | None,
        deadline: float,
    ) -> JsonDict:
        try:
            address = await with_timeout(
                self._discovery.resolve(destination),
                deadline - self._clock.monotonic(),
                self._clock,
            )
        except ValueError as e:
            raise FederationUnavailableError(destination, str(e)) from None
        except TimeoutError:
            raise FederationUnavailableError(
                destination, "timed out resolving the server"
            ) from None
        uri = path
        if args:
            uri += "?" + urlencode(
                [(k, v) for k, vs in args.items() for v in ([vs] if isinstance(vs, str) else vs)]
            )
        headers = {
            "Host": address.host_header,
            "User-Agent": USER_AGENT,
            "Authorization": sign_request(
                method=method,
                uri=uri,
                origin=self._server_name,
                destination=destination,
                content=body,
                signing_key=self._signing_key,
            ),
        }
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = orjson.dumps(body)
        remaining = deadline - self._clock.monotonic()
        if remaining <= 0:
            raise FederationUnavailableError(destination, "timed out resolving the server")
        try:
            response = await self._http.request(
                method,
                address.url(uri),
                clock=self._clock,
                timeout_s=remaining,
                ip_filter=self._ip_filter,
                headers=headers,
                body=data,
                verify_tls=self._verify_tls,
                server_hostname=address.tls_name,
                max_body_bytes=MAX_RESPONSE_BYTES,
            )
        except HttpClientError as e:
            logger.info("%s %s to %s failed: %s", method, path, destination, e)
            raise FederationUnavailableError(destination, str(e)) from None
        try:
            parsed = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            parsed = None
        if not 200 <= response.status < 300:
            errcode = parsed.get("errcode") if isinstance(parsed, dict) else None
            error = parsed.get("error") if isinstance(parsed, dict) else None
            raise RemoteMatrixError(
                destination,
                response.status,
                errcode if isinstance(errcode, str) else None,
                error if isinstance(error, str) else None,
                parsed,
            )
        if not isinstance(parsed, dict):
            raise FederationUnavailableError(destination, "the response is not a JSON object")
        return parsed


def federation_ip_filter(config: FederationTransportConfig) -> IpRangeFilter:
    return _parsed_ip_filter(
        tuple(config.federation_ip_range_blacklist), tuple(config.federation_ip_range_whitelist)
    )


@functools.lru_cache(maxsize=64)
def _parsed_ip_filter(blacklist: tuple[str, ...], whitelist: tuple[str, ...]) -> IpRangeFilter:
    # Parsing the ranges cost more than the rest of building a tenant's
    # federation transport, on every wake; tenants mostly share them.
    return IpRangeFilter.parse(blacklist, whitelist)
