"""The process's outbound HTTP client against real servers on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from hamlet.config.model import DEFAULT_IP_RANGE_BLACKLIST
from hamlet.runtime.clock import Clock
from hamlet.runtime.http_client import (
    ALLOW_ALL,
    BlockedAddressError,
    HttpClient,
    IpRangeFilter,
    RequestTimedOutError,
    ResponseTooLargeError,
)
from hamlet.runtime.logcontext import LoggingContext, current_context
from tests.conftest import advance
from tests.support.harness import RecordingHandler
from tests.support.local_server import FakeResolver, serve

DEFAULT = IpRangeFilter.parse(DEFAULT_IP_RANGE_BLACKLIST)
LOOPBACK_ONLY = IpRangeFilter.parse(DEFAULT_IP_RANGE_BLACKLIST, ["127.0.0.1/32"])


@pytest.fixture
async def clock() -> AsyncIterator[Clock]:
    clock = Clock("http.test")
    clock.start()
    yield clock
    await clock.shutdown()


def counting_app() -> tuple[web.Application, list[str]]:
    """Answers `ok` on /, 2 KiB on /big (with and without a length) and a redirect."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        if request.path == "/big":
            return web.Response(body=b"x" * 2048)
        if request.path == "/big-chunked":
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            for _ in range(4):
                await response.write(b"y" * 512)
            await response.write_eof()
            return response
        if request.path == "/redirect":
            raise web.HTTPFound("http://10.0.0.1/")
        return web.Response(text=f"ok {request.headers.get('Host')}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app, seen


def test_the_default_ranges_refuse_internal_addresses() -> None:
    for address in ("127.0.0.1", "10.1.2.3", "192.168.0.9", "169.254.1.1", "::1", "fe80::1%eth0"):
        assert not DEFAULT.allows(address), address
    # An IPv4 address wrapped in IPv6 is judged as itself.
    assert not DEFAULT.allows("::ffff:10.0.0.1")
    assert DEFAULT.allows("8.8.8.8") and DEFAULT.allows("2001:4860::8888")
    # 0.0.0.0 and :: are refused even with empty lists, as in Synapse.
    empty = IpRangeFilter.parse([])
    assert not empty.allows("0.0.0.0") and not empty.allows("::")
    assert empty.allows("127.0.0.1")
    # The whitelist wins over the blacklist.
    assert LOOPBACK_ONLY.allows("127.0.0.1") and not LOOPBACK_ONLY.allows("127.0.0.2")
    assert not DEFAULT.allows("not an address")


async def test_an_internal_ip_literal_is_refused_before_connecting(clock: Clock) -> None:
    app, seen = counting_app()
    client = HttpClient()
    try:
        async with serve(app) as port:
            with pytest.raises(BlockedAddressError):
                await client.request(
                    "GET", f"http://127.0.0.1:{port}/", clock=clock, timeout_s=5, ip_filter=DEFAULT
                )
            ok = await client.request(
                "GET", f"http://127.0.0.1:{port}/", clock=clock, timeout_s=5, ip_filter=ALLOW_ALL
            )
        assert ok.status == 200
        assert seen == ["/"]
    finally:
        await client.close()


async def test_a_name_resolving_to_internal_addresses_is_refused_at_connect(clock: Clock) -> None:
    app, seen = counting_app()
    resolver = FakeResolver({"rebound.test": ["10.0.0.7", "127.0.0.1"]})
    client = HttpClient(resolver_factory=lambda: resolver)
    try:
        async with serve(app) as port:
            url = f"http://rebound.test:{port}/"
            with pytest.raises(BlockedAddressError):
                await client.request("GET", url, clock=clock, timeout_s=5, ip_filter=DEFAULT)
            assert seen == []
            # Only the allowed address is tried: 10.0.0.7 is dropped, 127.0.0.1 answers.
            ok = await client.request("GET", url, clock=clock, timeout_s=5, ip_filter=LOOPBACK_ONLY)
            assert (ok.status, ok.body) == (200, f"ok rebound.test:{port}".encode())
            # A stricter filter does not reuse the lenient filter's pooled connection.
            with pytest.raises(BlockedAddressError):
                await client.request("GET", url, clock=clock, timeout_s=5, ip_filter=DEFAULT)
        assert seen == ["/"]
    finally:
        await client.close()


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
async def test_a_body_over_the_limit_is_refused(clock: Clock, path: str) -> None:
    app, _seen = counting_app()
    client = HttpClient()
    try:
        async with serve(app) as port:
            url = f"http://127.0.0.1:{port}{path}"
            with pytest.raises(ResponseTooLargeError):
                await client.request(
                    "GET", url, clock=clock, timeout_s=5, ip_filter=ALLOW_ALL, max_body_bytes=1024
                )
            whole = await client.request(
                "GET", url, clock=clock, timeout_s=5, ip_filter=ALLOW_ALL, max_body_bytes=4096
            )
            assert len(whole.body) == 2048
    finally:
        await client.close()


async def test_redirects_are_returned_not_followed(clock: Clock) -> None:
    app, seen = counting_app()
    client = HttpClient()
    try:
        async with serve(app) as port:
            response = await client.request(
                "GET",
                f"http://127.0.0.1:{port}/redirect",
                clock=clock,
                timeout_s=5,
                ip_filter=ALLOW_ALL,
            )
        assert response.status == 302
        assert response.headers["location"] == "http://10.0.0.1/"
        assert seen == ["/redirect"]
    finally:
        await client.close()


async def test_a_timeout_keeps_the_callers_logging_context(
    clock: Clock, log_records: RecordingHandler
) -> None:
    arrived = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        arrived.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    app = web.Application()
    app.router.add_get("/", hang)
    client = HttpClient()
    try:
        async with serve(app) as port:
            with LoggingContext("GET-42", "http.test", request="GET-42") as mine:
                pending = asyncio.get_running_loop().create_task(
                    client.request(
                        "GET",
                        f"http://127.0.0.1:{port}/",
                        clock=clock,
                        timeout_s=30,
                        ip_filter=ALLOW_ALL,
                    )
                )
                await arrived.wait()
                await advance(31)
                with pytest.raises(RequestTimedOutError):
                    await pending
                assert current_context() is mine
    finally:
        await client.close()
    (line,) = log_records.matching("Timed out after")
    assert line.request == "GET-42"  # type: ignore[attr-defined]
    assert line.server_name == "http.test"  # type: ignore[attr-defined]


async def test_a_closed_client_refuses_new_requests(clock: Clock) -> None:
    client = HttpClient()
    await client.close()
    with pytest.raises(Exception, match="closed"):
        await client.request(
            "GET", "http://127.0.0.1:9/", clock=clock, timeout_s=1, ip_filter=ALLOW_ALL
        )
