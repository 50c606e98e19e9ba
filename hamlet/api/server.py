"""The aiohttp front door: picks the tenant, runs the route, shapes errors.

Everything that turns exceptions into HTTP happens here, once, whatever
failed: an unknown host, a tenant that is suspended, cannot wake (its
storage will not open) or is over its concurrency cap, a handler's
`MatrixError`, or a bug (logged with its traceback under the request's
context and answered `500 M_UNKNOWN`). Every response carries the CORS
headers, writes one access-log line and is counted in the host's figures.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import itertools
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from aiohttp import web

from hamlet.api.request import ApiRequest
from hamlet.api.router import Route, Router
from hamlet.config.model import ListenerConfig
from hamlet.handlers.common.errors import MatrixError, TooLargeError, UnrecognizedError
from hamlet.handlers.common.work_slots import WorkSlots
from hamlet.runtime import tracing
from hamlet.runtime.clock import pass_turn
from hamlet.runtime.http_client import is_ip_literal
from hamlet.runtime.logcontext import LoggingContext, measure_cpu
from hamlet.runtime.shielding import run_to_the_end

if TYPE_CHECKING:
    from hamlet.homeserver import HomeServer

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("hamlet.access")

HOST_SERVER_NAME = "hamlet-host"

#: Requests a client's disconnect cancels at once (as Synapse's @cancellable
#: servlets, all reads). Any other request runs to its end and then logs
#: 499: stopped between a commit and what follows it in memory (a room's
#: head, waking the notifier), a write would leave the two disagreeing.
CANCELLABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization, Date",
    "Access-Control-Expose-Headers": "Retry-After",
}


@dataclass(frozen=True, slots=True)
class RequestSample:
    """One answered request, as the host's figures count it.

    `servlet` (the route's handler) and `tag` (e.g. a /sync's kind) are
    Synapse's labels; `servlet` is None when no route matched.
    """

    method: str
    servlet: str | None
    tag: str
    status: int
    wall_s: float
    cpu_s: float
    db_s: float
    db_txns: int
    nbytes: int


class RequestObserver(Protocol):
    """Where the host counts requests: as they are routed, and once answered."""

    def received(self, method: str, servlet: str) -> None: ...

    def observe(self, sample: RequestSample) -> None: ...


class TenantGate(RequestObserver, Protocol):
    """What the front door needs of a tenant: a way in, and a place to count requests."""

    server_name: str

    def open(self) -> AbstractAsyncContextManager[HomeServer]:
        """The running homeserver, for the duration of one request (waking it if needed)."""


class TenantResolver(Protocol):
    @property
    def unrouted(self) -> RequestObserver:
        """Counts the requests no tenant answered (unknown Host)."""

    def resolve(self, host: str | None) -> TenantGate | None:
        """The tenant serving this Host header (port already stripped), if any."""


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return encoded_json_response(orjson.dumps(body), status, headers)


def encoded_json_response(
    body: bytes, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A response whose JSON is already encoded, e.g. once for many requests."""
    return web.Response(
        status=status,
        body=body,
        content_type="application/json",
        headers={**CORS_HEADERS, **(headers or {})},
    )


def shared_json_response(
    encoded: dict[str, bytes], key: str, build: Callable[[], Any]
) -> web.Response:
    """The JSON of a result identical requests share (/sync, sliding sync):
    a retry storm or a flood of them encodes it once. `encoded` is the
    result's cache of bodies, by response format."""
    body = encoded.get(key)
    if body is None:
        body = encoded[key] = orjson.dumps(build())
    return encoded_json_response(body)


def error_response(err: MatrixError) -> web.Response:
    return json_response(err.status, err.to_json(), err.headers())


@dataclass(slots=True)
class _Exchange:
    """What the access log needs to know of a request once it has been routed."""

    client_ip: str = "-"
    request: ApiRequest | None = None
    servlet: str | None = None


def client_address(http: web.Request, x_forwarded: bool) -> str:
    """The client's IP: the peer, or on an `x_forwarded` listener what the proxy says.

    As Synapse does, the first address of the first X-Forwarded-For header
    (the proxy in front is trusted to have set it). Only a well-formed IP
    address is taken: the value keys rate limits and is stored as a
    device's last-seen address.
    """
    peer = http.remote or "-"
    if not x_forwarded:
        return peer
    header = http.headers.get("X-Forwarded-For")
    if header is None:
        return peer
    first = header.split(",", 1)[0].strip()
    try:
        return str(ipaddress.ip_address(first))
    except ValueError:
        return peer


def _compresses(listener: ListenerConfig | None) -> bool:
    # Every listener serves every API (resource names pick nothing yet), so
    # one resource asking for compression turns it on for the listener.
    return listener is not None and any(r.compress for r in listener.resources)


def strip_port(host: str | None) -> str | None:
    if host is None:
        return None
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _unrouted(host: str | None, http: web.Request) -> web.Response:
    """The answer to a request no tenant serves.

    Load balancers check health by address, with no Host or an IP literal:
    /health answers them at once, and their probes of other paths are
    refused without a warning each. A name nobody serves is worth one.
    """
    if http.path == "/health":
        return web.Response(text="OK", headers=CORS_HEADERS)
    if host is None or is_ip_literal(host):
        logger.debug("Refused request for no tenant (Host %r): %s", host, http.path)
    else:
        logger.warning("Refused request for unknown host %r: %s", host, http.path)
    return error_response(UnrecognizedError(404, f"Unknown host {host!r}"))


#: Bodies above this are written a chunk at a time, waiting for the client
#: to take each and letting every other connection have a turn in between:
#: handed to the transport whole, a body is copied and sent in one go while
#: every other connection waits, and a flood of identical megabyte /sync
#: answers (one shared body) is as many copies in one turn of the loop.
STREAM_ABOVE = 256 * 1024
STREAM_CHUNK = 128 * 1024
#: Large bodies of one writer (a user, or an address for anonymous
#: requests) written at once; the rest wait for one to finish. Every
#: chunk written gives everyone a turn, yet a flood of forty identical
#: full syncs would still be forty chunks per turn: so the flooder's
#: answers queue behind each other, not everyone else's.
STREAMS_PER_WRITER = 2


async def _stream(
    http: web.Request, response: web.Response, *, compress: bool
) -> web.StreamResponse:
    body = response.body
    assert isinstance(body, bytes | bytearray)
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    out = web.StreamResponse(status=response.status, headers=headers)
    if compress and response.content_type == "application/json":
        out.enable_compression()
    else:
        out.content_length = len(body)
    await out.prepare(http)
    view = memoryview(body)
    for start in range(0, len(body), STREAM_CHUNK):
        await out.write(view[start : start + STREAM_CHUNK])
        # The socket may take it all at once (`write` then never waits).
        await pass_turn()
    await out.write_eof()
    return out


#: Large bodies written at once in all; more than the connections a
#: process serves at once, so only the per-writer cap ever waits.
MAX_STREAMS = 100_000


def _writer(server_name: str, exchange: _Exchange) -> str:
    """Whose turn a large body takes: the user's, else the address's."""
    request = exchange.request
    if request is not None and request.requester is not None:
        return f"{server_name} {request.requester.user_id}"
    return f"{server_name} {exchange.client_ip}"


class HttpFrontend:
    """Serves every tenant the resolver knows, on any number of listeners."""

    def __init__(self, resolver: TenantResolver, router: Router) -> None:
        self.resolver = resolver
        self.router = router
        self._counter = itertools.count(1)
        self._streams = WorkSlots(STREAMS_PER_WRITER, MAX_STREAMS)

    def make_app(self, listener: ListenerConfig | None = None) -> web.Application:
        """The app for one listener; its `x_forwarded` and `compress` apply to it alone."""
        # The real size limit is per tenant (ApiRequest.body); this is a backstop.
        app = web.Application(client_max_size=1024**3, handler_args={"access_log": None})
        handler = functools.partial(
            self.handle,
            x_forwarded=listener is not None and listener.x_forwarded,
            compress=_compresses(listener),
        )
        app.router.add_route("*", "/{tail:.*}", handler)
        return app

    async def handle(
        self, http: web.Request, *, x_forwarded: bool = False, compress: bool = False
    ) -> web.StreamResponse:
        host = strip_port(http.headers.get("Host"))
        gate = self.resolver.resolve(host)
        observer = gate if gate is not None else self.resolver.unrouted
        server_name = gate.server_name if gate is not None else HOST_SERVER_NAME
        name = f"{http.method}-{next(self._counter)}"
        exchange = _Exchange(client_ip=client_address(http, x_forwarded))
        with LoggingContext(name, server_name, request=name) as ctx:
            tracing.start_request_span(ctx, http.method)
            respond = self._respond(gate, host, http, ctx, exchange, observer)
            try:
                if http.method in CANCELLABLE_METHODS:
                    response = await respond
                else:
                    response = await run_to_the_end(respond)
            except asyncio.CancelledError:
                # The client went away (or the server is stopping): still one line.
                self._finish(observer, server_name, http, ctx, exchange, 499, 0)
                raise
            nbytes = response.content_length or 0  # a streamed file says its length
            if isinstance(response, web.Response) and response.body is not None:
                body = response.body
                nbytes = len(body) if isinstance(body, bytes | bytearray) else 0
            self._finish(observer, server_name, http, ctx, exchange, response.status, nbytes)
            if compress and response.content_type == "application/json" and not response.prepared:
                # Negotiated from Accept-Encoding; media is already compressed.
                response.enable_compression()
            if isinstance(response, web.Response) and nbytes > STREAM_ABOVE:
                async with self._streams.slot(_writer(server_name, exchange)):
                    return await _stream(http, response, compress=compress)
            return response

    async def _respond(
        self,
        gate: TenantGate | None,
        host: str | None,
        http: web.Request,
        ctx: LoggingContext,
        exchange: _Exchange,
        observer: RequestObserver,
    ) -> web.StreamResponse:
        """The response, with every failure (waking included) shaped into Matrix JSON."""
        try:
            if http.method == "OPTIONS":
                return web.Response(status=204, headers=CORS_HEADERS)
            if gate is None:
                return _unrouted(host, http)
            async with gate.open() as hs:
                return await self.dispatch(hs, http, ctx, exchange, observer)
        except MatrixError as e:
            return error_response(e)
        except web.HTTPRequestEntityTooLarge:
            return error_response(TooLargeError())
        except Exception:
            logger.exception("Request failed: %s %s", http.method, http.path)
            return error_response(MatrixError(500, "M_UNKNOWN", "Internal server error"))

    async def dispatch(
        self,
        hs: HomeServer,
        http: web.Request,
        ctx: LoggingContext,
        exchange: _Exchange,
        observer: RequestObserver,
    ) -> web.StreamResponse:
        path = http.raw_path.split("?", 1)[0]
        route, params, known = self.router.match(http.method, path)
        if route is None:
            raise UnrecognizedError(405 if known else 404)
        tracing.set_route(ctx, http.method, route.pattern)
        exchange.servlet = route.servlet
        observer.received(http.method, route.servlet)
        if any("\x00" in value for value in params.values()):
            # No ID, type or key may hold NUL (PostgreSQL text refuses it).
            raise MatrixError(400, "M_INVALID_PARAM", "NUL in a path parameter")
        exchange.request = ApiRequest(hs=hs, http=http, params=params, client_ip=exchange.client_ip)
        return await measure_cpu(self._call(hs, route, exchange.request), ctx)

    @staticmethod
    def _finish(
        observer: RequestObserver,
        server_name: str,
        http: web.Request,
        ctx: LoggingContext,
        exchange: _Exchange,
        status: int,
        nbytes: int,
    ) -> None:
        """The one access-log line and the host's count, for every request."""
        usage = ctx.usage
        usage.wall_s = time.monotonic() - ctx.started_at
        observer.observe(
            RequestSample(
                http.method,
                exchange.servlet,
                ctx.tag,
                status,
                usage.wall_s,
                usage.cpu_s,
                usage.db_s,
                usage.db_txn_count,
                nbytes,
            )
        )
        tracing.end_request_span(ctx, status)
        request = exchange.request
        user = request.requester.user_id if request and request.requester else "-"
        access_logger.info(
            '%s - %s - {%s} Processed request: %.3fsec/%.3fsec (%.3fsec, %d txns) %dB %d "%s %s"',
            exchange.client_ip,
            server_name,
            user,
            ctx.usage.wall_s,
            ctx.usage.cpu_s,
            ctx.usage.db_s,
            ctx.usage.db_txn_count,
            nbytes,
            status,
            http.method,
            http.rel_url.path,
        )

    async def _call(self, hs: HomeServer, route: Route, req: ApiRequest) -> web.StreamResponse:
        if route.capped:
            async with hs.request_slot():
                result = await route.handler(req)
        else:
            result = await route.handler(req)
        if isinstance(result, web.StreamResponse):
            return result
        if isinstance(result, tuple):
            status, body = result
            return json_response(status, body)
        return json_response(200, result)
