"""The `opentracing:` section end to end: a HostProcess exports its spans over OTLP/HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from hamlet.config import validate_config
from hamlet.host.process import HostProcess
from hamlet.runtime import tracing


async def test_spans_reach_an_otlp_collector(tmp_path: Path) -> None:
    received: list[ExportTraceServiceRequest] = []

    async def collect(request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        received.append(ExportTraceServiceRequest.FromString(await request.read()))
        return web.Response(status=200)

    collector = web.Application()
    collector.router.add_post("/v1/traces", collect)
    runner = web.AppRunner(collector)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    collector_port = runner.addresses[0][1]
    raw: dict[str, Any] = {
        "server_name": "traced.test",
        "listeners": [{"port": 0, "bind_addresses": ["127.0.0.1"]}],
        "database": {"name": "sqlite3", "args": {"database": str(tmp_path / "hs.db")}},
        "opentracing": {
            "enabled": True,
            "otlp_endpoint": f"http://127.0.0.1:{collector_port}/v1/traces",
            "service_name": "hamlet-test",
        },
    }
    config, _ = validate_config(raw, config_dir=tmp_path)
    process = HostProcess([config])
    try:
        await process.start()
        assert tracing.enabled()
        url = f"http://127.0.0.1:{process.bound_ports[0]}/_matrix/client/versions"
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            assert resp.status == 200
    finally:
        await process.stop()  # flushes the batch to the collector
        await runner.cleanup()
    assert not tracing.enabled()

    spans = [
        (resource.resource, span)
        for request in received
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    server_spans = [(r, s) for r, s in spans if s.name == "GET /_matrix/client/versions"]
    assert len(server_spans) == 1
    resource, span = server_spans[0]
    attributes = {a.key: a.value for a in span.attributes}
    assert attributes["server_name"].string_value == "traced.test"
    assert attributes["http.response.status_code"].int_value == 200
    service = {a.key: a.value.string_value for a in resource.attributes}["service.name"]
    assert service == "hamlet-test"
