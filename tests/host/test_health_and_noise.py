"""Load-balancer probes and malformed requests: cheap answers, no log noise."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.host.test_tenants import MakeHost, make_host  # noqa: F401
from tests.support.harness import RecordingHandler


async def _raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()


def _loud(log_records: RecordingHandler) -> list[logging.LogRecord]:
    """Warnings, and tracebacks anywhere but at DEBUG."""
    return [
        r
        for r in log_records.records
        if r.levelno >= logging.WARNING or (r.exc_info and r.levelno > logging.DEBUG)
    ]


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:8008\r\nConnection: close\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: [::1]:8008\r\nConnection: close\r\n\r\n",
        b"GET /health HTTP/1.0\r\n\r\n",
    ],
)
async def test_a_probe_by_address_gets_a_health_answer_without_a_warning(
    make_host: MakeHost,  # noqa: F811
    log_records: RecordingHandler,
    request_line: bytes,
) -> None:
    host = await make_host()
    response = await _raw(host.port, request_line)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split(b" ")[1] == b"200", response
    assert body == b"OK"
    assert _loud(log_records) == []


async def test_other_probes_by_address_are_refused_quietly(
    make_host: MakeHost,  # noqa: F811
    log_records: RecordingHandler,
) -> None:
    host = await make_host()
    for _ in range(3):
        response = await _raw(
            host.port, b"GET / HTTP/1.1\r\nHost: 10.0.0.1\r\nConnection: close\r\n\r\n"
        )
        assert b" 404 " in response.split(b"\r\n")[0]
    assert _loud(log_records) == []
    # A name nobody serves is still worth a warning.
    status, _ = await host.call("nobody.test", "GET", "/")
    assert status == 404
    assert [r.levelname for r in _loud(log_records)] == ["WARNING"]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: main.test\r\nContent-Length: x\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: main.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: main.test\r\nX: " + b"a" * 20_000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: main.test\r\nAuthorization: Bearer syt_x\x01y\r\n\r\n",
    ],
)
async def test_a_malformed_request_is_one_quiet_line(
    make_host: MakeHost,  # noqa: F811
    log_records: RecordingHandler,
    request_bytes: bytes,
) -> None:
    host = await make_host()
    response = await _raw(host.port, request_bytes)
    assert b" 400 " in response.split(b"\r\n")[0]
    assert _loud(log_records) == []
    lines = log_records.matching("Malformed HTTP request from 127.0.0.1")
    # aiohttp itself keeps a non-HTTP first line (a scanner, TLS to a plain port) at DEBUG.
    assert [r.levelno for r in lines] == ([] if request_bytes.startswith(b"GARBAGE") else [20])
    assert not any("syt_x" in r.getMessage() for r in lines)
