"""Tracing: spans carried by the logging context, checked with the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.api.server import HttpFrontend
from hamlet.config import HomeServerConfig, validate_config
from hamlet.runtime import tracing
from hamlet.runtime.logcontext import current_context
from hamlet.runtime.timeout import with_timeout
from tests.conftest import advance
from tests.support.harness import Harness, start_harness

MakeConfig = Callable[..., HomeServerConfig]

SEEN: dict[str, Any] = {}


def _span_id() -> int | None:
    span = tracing.current_span()
    return None if span is None else span.get_span_context().span_id


async def fast(req: ApiRequest) -> dict[str, Any]:
    return {}


async def awaits(req: ApiRequest) -> dict[str, Any]:
    """The request's span stays current across an await and a timeout that fires."""
    ids = [_span_id()]
    await req.hs.db.fetchval("traced", "SELECT 1")
    ids.append(_span_id())
    try:
        await with_timeout(req.hs.clock.sleep(60), 5, req.hs.clock)
    except TimeoutError:
        ids.append(_span_id())
    SEEN["awaits"] = ids
    return {}


async def slow(req: ApiRequest) -> dict[str, Any]:
    SEEN["slow"] = _span_id()
    try:
        await req.hs.clock.sleep(100)
    finally:
        SEEN["slow_cancelled"] = _span_id()
    return {}


async def starts_job(req: ApiRequest) -> dict[str, Any]:
    async def job() -> None:
        SEEN["job"] = _span_id()
        await req.hs.clock.sleep(1)

    SEEN["request"] = _span_id()
    req.hs.clock.run_as_background_process("from_request", job)
    return {}


def make_router() -> Router:
    router = Router()
    router.add("GET", "/fast", fast)
    router.add("GET", "/awaits", awaits)
    router.add("GET", "/slow", slow)
    router.add("POST", "/jobs/{kind}", starts_job)
    return router


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    tracing.init(exporter=spans)
    SEEN.clear()
    yield spans
    tracing.shutdown()


@pytest.fixture
async def h(make_hs_config: MakeConfig, exporter: InMemorySpanExporter) -> AsyncIterator[Harness]:
    harness = await start_harness(
        [make_hs_config("a.test"), make_hs_config("b.test")], router=make_router()
    )
    yield harness
    await harness.close()


def _request_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]


def _only(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    (span,) = [s for s in spans if s.name == name]
    return span


async def test_one_server_span_per_request_with_route_status_and_tenant(
    h: Harness, exporter: InMemorySpanExporter
) -> None:
    assert (await h.request("GET", "/fast", host="a.test")).status == 200
    assert (await h.request("GET", "/nowhere", host="b.test")).status == 404
    spans = _request_spans(exporter)
    assert len(spans) == 2
    ok = _only(spans, "GET /fast")
    assert ok.attributes is not None
    assert dict(ok.attributes) == {
        "http.request.method": "GET",
        "http.route": "/fast",
        "http.response.status_code": 200,
        "server_name": "a.test",
        "request": ok.attributes["request"],
        "db.txn_count": 0,
        "db.duration_s": 0.0,
        "cpu_s": ok.attributes["cpu_s"],
    }
    assert str(ok.attributes["request"]).startswith("GET-")
    missing = _only(spans, "GET")  # no route matched: named by the method alone
    assert missing.attributes is not None
    assert missing.attributes["http.response.status_code"] == 404
    assert missing.attributes["server_name"] == "b.test"
    assert ok.context is not None and missing.context is not None
    assert ok.context.trace_id != missing.context.trace_id
    assert ok.parent is None and missing.parent is None
    assert current_context() is None


async def test_the_span_survives_awaits_and_a_timeout(
    h: Harness, exporter: InMemorySpanExporter
) -> None:
    pending = asyncio.get_running_loop().create_task(h.request("GET", "/awaits", host="a.test"))
    await advance(5)
    assert (await pending).status == 200
    span = _only(_request_spans(exporter), "GET /awaits")
    assert span.context is not None
    assert SEEN["awaits"] == [span.context.span_id] * 3
    assert span.attributes is not None and span.attributes["db.txn_count"] == 1


async def test_a_cancelled_request_ends_its_span_as_499_and_leaks_it_nowhere(
    h: Harness, exporter: InMemorySpanExporter
) -> None:
    frontend = h.frontend
    assert isinstance(frontend, HttpFrontend)
    outcome: list[Any] = []

    async def connection() -> None:
        request = make_mocked_request("GET", "/slow", headers={"Host": "a.test"})
        try:
            await frontend.handle(request)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            assert task is not None
            task.uncancel()
        outcome.append(tracing.current_span())
        await frontend.handle(make_mocked_request("GET", "/fast", headers={"Host": "a.test"}))

    task = asyncio.get_running_loop().create_task(connection())
    await advance(1)
    task.cancel()  # the client went away mid-await
    await task
    assert outcome == [None]
    spans = _request_spans(exporter)
    cancelled = _only(spans, "GET /slow")
    assert cancelled.context is not None
    # The handler's cleanup, run by the cancellation, still saw its own span.
    assert SEEN["slow"] == SEEN["slow_cancelled"] == cancelled.context.span_id
    assert cancelled.attributes is not None
    assert cancelled.attributes["http.response.status_code"] == 499
    after = _only(spans, "GET /fast")
    assert after.context is not None and after.context.trace_id != cancelled.context.trace_id


async def test_a_background_job_has_its_own_trace_linked_both_ways(
    h: Harness, exporter: InMemorySpanExporter
) -> None:
    assert (await h.request("POST", "/jobs/x", host="b.test")).status == 200
    await advance(2)
    finished = exporter.get_finished_spans()
    request = _only(finished, "POST /jobs/{kind}")
    job = _only(finished, "bgproc.from_request")
    assert request.context is not None and job.context is not None
    assert SEEN["request"] == request.context.span_id
    assert SEEN["job"] == job.context.span_id
    assert job.context.trace_id != request.context.trace_id
    assert job.parent is None
    assert [link.context.span_id for link in job.links] == [request.context.span_id]
    assert [link.context.span_id for link in request.links] == [job.context.span_id]
    assert job.attributes is not None
    assert job.attributes["server_name"] == "b.test"
    assert str(job.attributes["job"]).startswith("background-from_request-")


async def test_looping_calls_are_traced_per_run(h: Harness, exporter: InMemorySpanExporter) -> None:
    hs = h.servers["a.test"]
    runs: list[int | None] = []
    hs.clock.looping_call(lambda: runs.append(_span_id()), 5)
    await advance(11)
    spans = [s for s in exporter.get_finished_spans() if s.name.startswith("looping_call.")]
    mine = [s for s in spans if s.context is not None and s.context.span_id in runs]
    assert len(runs) == 2 and len(mine) == 2
    assert mine[0].context is not None and mine[1].context is not None
    assert mine[0].context.trace_id != mine[1].context.trace_id
    assert all(s.attributes is not None and s.attributes["server_name"] == "a.test" for s in mine)


async def test_only_whitelisted_tenants_are_traced(h: Harness) -> None:
    exporter = InMemorySpanExporter()
    tracing.init(exporter=exporter, servers=[r"b\.test"])
    await h.request("GET", "/fast", host="a.test")
    await h.request("GET", "/fast", host="b.test")
    spans = _request_spans(exporter)
    assert [s.attributes["server_name"] for s in spans if s.attributes] == ["b.test"]


async def test_sample_rate_zero_records_nothing(h: Harness) -> None:
    exporter = InMemorySpanExporter()
    tracing.init(exporter=exporter, sample_rate=0.0)
    assert (await h.request("GET", "/fast", host="a.test")).status == 200
    assert exporter.get_finished_spans() == ()


def test_off_imports_nothing_and_makes_no_spans() -> None:
    """bench/tracing.py serves requests and jobs off, then on: it counts both."""
    bench = Path(__file__).resolve().parents[2] / "bench" / "tracing.py"
    result = subprocess.run(
        [sys.executable, str(bench), "--requests", "20"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    off, on = (json.loads(line) for line in result.stdout.splitlines())
    assert off["mode"] == "off" and on["mode"] == "on"
    assert off["opentelemetry_modules_imported"] == 0
    assert off["requests_with_a_span"] == 0
    assert on["requests_with_a_span"] > 0


def test_the_opentracing_section() -> None:
    base = {"server_name": "t.test"}
    config, warnings = validate_config(
        {
            **base,
            "opentracing": {
                "enabled": True,
                "sample_rate": 0.25,
                "homeserver_whitelist": [r".*\.example\.org"],
                "otlp_endpoint": "http://collector:4318/v1/traces",
            },
        },
        config_dir=Path("/tmp"),
    )
    assert warnings == []
    tracing_config = config.opentracing
    assert tracing_config.enabled and tracing_config.sample_rate == 0.25
    assert tracing_config.homeserver_whitelist == (r".*\.example\.org",)
    assert tracing_config.otlp_endpoint == "http://collector:4318/v1/traces"
    default, _ = validate_config(base, config_dir=Path("/tmp"))
    assert not default.opentracing.enabled and default.opentracing.homeserver_whitelist is None
    with pytest.raises(Exception) as bad:
        validate_config(
            {
                **base,
                "opentracing": {
                    "sample_rate": 2,
                    "homeserver_whitelist": ["("],
                    "otlp_endpoint": "collector:4318",
                },
            },
            config_dir=Path("/tmp"),
        )
    errors = "\n".join(getattr(bad.value, "errors", []))
    assert "opentracing.sample_rate" in errors
    assert "opentracing.homeserver_whitelist[0]" in errors
    assert "opentracing.otlp_endpoint" in errors
