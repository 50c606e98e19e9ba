"""What tracing costs a request and a background job, off and on.

    .venv/bin/python bench/tracing.py [--requests 20000]

Runs the same in-process requests (a route that does nothing, through
`HttpFrontend.handle` with a real HomeServer behind it, no sockets) and the
same background jobs with tracing off, then on (every span recorded and
handed to an exporter that drops it, so the SDK's own work is measured,
not a network). Prints one JSON line per mode: us_per_request,
us_per_job, ns_hooks_per_request (the three request hooks alone, called
in a loop: what tracing adds to a request), requests_with_a_span and,
off, how many OpenTelemetry modules were imported (tests/runtime/
test_tracing.py runs this with a few requests to check both are 0).
Prints numbers only; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp.test_utils import make_mocked_request

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.api.server import HttpFrontend
from hamlet.config import validate_config
from hamlet.homeserver import HomeServer
from hamlet.host.registry import TenantRegistry
from hamlet.runtime import tracing
from hamlet.runtime.logcontext import LoggingContext, current_context

ROUNDS = 5


SPANS_SEEN = [0]


async def nothing(req: ApiRequest) -> dict[str, Any]:
    ctx = current_context()
    if ctx is not None and ctx.span is not None:
        SPANS_SEEN[0] += 1
    return {}


async def idle() -> None:
    return None


async def run_requests(frontend: HttpFrontend, n: int) -> float:
    request = make_mocked_request("GET", "/nothing")  # made once: mocks are slow to build
    started = time.perf_counter()
    for _ in range(n):
        response = await frontend.handle(request)
        assert response.status == 200
    return (time.perf_counter() - started) / n * 1e6


async def run_jobs(hs: HomeServer, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await hs.clock.run_as_background_process("bench", idle)
    return (time.perf_counter() - started) / n * 1e6


def time_hooks(n: int) -> float:
    ctx = LoggingContext("GET-1", "bench.test", request="GET-1")
    started = time.perf_counter()
    for _ in range(n):
        tracing.start_request_span(ctx, "GET")
        tracing.set_route(ctx, "GET", "/nothing")
        tracing.end_request_span(ctx, 200)
    return (time.perf_counter() - started) / n * 1e9


async def measure(hs: HomeServer, frontend: HttpFrontend, n: int) -> dict[str, float]:
    await run_requests(frontend, n // 10)  # warm up
    requests, jobs = [], []
    for _ in range(ROUNDS):
        gc.collect()
        requests.append(await run_requests(frontend, n))
        jobs.append(await run_jobs(hs, n))
    return {
        "us_per_request": round(statistics.median(requests), 2),
        "us_per_job": round(statistics.median(jobs), 2),
        "ns_hooks_per_request": round(statistics.median(time_hooks(n) for _ in range(ROUNDS)), 1),
    }


def discarding_exporter() -> Any:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    return Discard()


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config, _ = validate_config(
            {
                "server_name": "bench.test",
                "database": {"name": "sqlite3", "args": {"database": f"{tmp}/hs.db"}},
            },
            config_dir=Path(tmp),
        )
        hs = HomeServer(config)
        await hs.setup()
        await hs.start()
        registry = TenantRegistry(single_tenant_fallback=True)
        registry.add(hs)
        router = Router()
        router.add("GET", "/nothing", nothing)
        frontend = HttpFrontend(registry, router)
        off = await measure(hs, frontend, n)
        imported = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        print(
            json.dumps(
                {
                    "mode": "off",
                    **off,
                    "requests_with_a_span": SPANS_SEEN[0],
                    "opentelemetry_modules_imported": len(imported),
                }
            ),
            flush=True,
        )
        SPANS_SEEN[0] = 0
        tracing.init(exporter=discarding_exporter())
        on = await measure(hs, frontend, n)
        print(json.dumps({"mode": "on", **on, "requests_with_a_span": SPANS_SEEN[0]}))
        tracing.shutdown()
        await hs.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    asyncio.run(main(parser.parse_args().requests))
