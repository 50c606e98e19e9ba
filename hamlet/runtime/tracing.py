"""Tracing (OpenTelemetry): one span per request and per background job.

What Synapse's `LogContextScopeManager` does, on asyncio: the active span
is an attribute of the `LoggingContext`, not a scope of its own, so it is
wherever the logging context is: across every await, a `with_timeout`
that fires and a cancelled request alike (they leave the caller in its
own context). A background job started from a request gets a trace of its
own (its logging context is fresh) with a link to the request's span, and
the request's span gets a link back, as Synapse's `run_as_background_process`
cross-links them.

Off (the default), every hook is one check of a module global: nothing of
OpenTelemetry is imported and no span object is made. `init()` imports the
SDK, and the OTLP exporter only when no other exporter is given. Spans name
the tenant in a plain `server_name` attribute; this module knows no Matrix.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from hamlet.runtime.blocking import run_file_io
from hamlet.runtime.logcontext import LoggingContext, current_context

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

SERVER_NAME_ATTRIBUTE: Final = "server_name"

_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_servers: re.Pattern[str] | None = None
# OpenTelemetry's names, bound by init(): no import statement on the hot path.
_otel: _Names | None = None


class _Names:
    def __init__(self) -> None:
        from opentelemetry.context import Context
        from opentelemetry.trace import Link, SpanKind, Status, StatusCode

        self.context = Context
        self.link = Link
        self.server = SpanKind.SERVER
        self.error = Status(StatusCode.ERROR)
        self.status = Status
        self.error_code = StatusCode.ERROR


def init(
    *,
    sample_rate: float = 1.0,
    servers: Sequence[str] | None = None,
    endpoint: str | None = None,
    service_name: str = "hamlet",
    exporter: SpanExporter | None = None,
) -> None:
    """Turn tracing on for this process.

    `servers`: regular expressions a tenant's server_name must match in
    full for its spans to be recorded (None: every tenant). Without
    `exporter`, spans go in batches, from a thread of the SDK's, to the
    OTLP/HTTP `endpoint`; an `exporter` given (tests) gets each span as it
    ends. Call it from the serving process (after any fork).
    """
    global _tracer, _provider, _servers, _otel
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    shutdown()
    processor: SpanProcessor
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint))
    else:
        processor = SimpleSpanProcessor(exporter)
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(sample_rate)),
        resource=Resource.create({"service.name": service_name}),
    )
    provider.add_span_processor(processor)
    _provider = provider
    _otel = _Names()
    _tracer = provider.get_tracer("hamlet")
    _servers = re.compile("|".join(f"(?:{p})" for p in servers)) if servers is not None else None


def _turn_off() -> TracerProvider | None:
    global _tracer, _provider, _servers, _otel
    provider, _provider, _tracer, _servers, _otel = _provider, None, None, None, None
    return provider


def shutdown() -> None:
    """Export what is pending and turn tracing off again."""
    provider = _turn_off()
    if provider is not None:
        provider.shutdown()


async def aclose() -> None:
    """`shutdown()` from the event loop: the last export (a network call) runs in a thread."""
    provider = _turn_off()
    if provider is not None:
        await run_file_io(provider.shutdown)


def enabled() -> bool:
    return _tracer is not None


def _wanted(server_name: str) -> bool:
    return _servers is None or _servers.fullmatch(server_name) is not None


def current_span() -> Span | None:
    """The span of the current logging context (or of the nearest parent that has one)."""
    return _nearest_span(current_context())


def start_request_span(ctx: LoggingContext, method: str) -> None:
    """Open the server span of the request `ctx` runs (named better by `set_route`)."""
    if _tracer is None or not _wanted(ctx.server_name):
        return
    assert _otel is not None
    ctx.span = _tracer.start_span(
        method,
        context=_otel.context(),  # empty: a trace of its own, whatever OpenTelemetry holds
        kind=_otel.server,
        attributes={
            "http.request.method": method,
            SERVER_NAME_ATTRIBUTE: ctx.server_name,
            "request": ctx.request_label,
        },
    )


def set_route(ctx: LoggingContext, method: str, route: str) -> None:
    span = ctx.span
    if span is None:
        return
    span.update_name(f"{method} {route}")
    span.set_attribute("http.route", route)


def end_request_span(ctx: LoggingContext, status: int) -> None:
    span = ctx.span
    if span is None:
        return
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        assert _otel is not None
        span.set_status(_otel.error)
    _end(ctx)


def start_job_span(ctx: LoggingContext, name: str, caller: LoggingContext | None = None) -> None:
    """Open the span of a background job running in `ctx`, a fresh context.

    The job has a trace of its own; if `caller` (who started it) has a
    span, each of the two spans gets a link to the other.
    """
    if _tracer is None or not _wanted(ctx.server_name):
        return
    assert _otel is not None
    cause = _nearest_span(caller)
    links = [_otel.link(cause.get_span_context(), {"hamlet.link": "started_by"})] if cause else []
    span = _tracer.start_span(
        name,
        context=_otel.context(),
        links=links,
        attributes={SERVER_NAME_ATTRIBUTE: ctx.server_name, "job": ctx.name},
    )
    ctx.span = span
    if cause is not None:
        cause.add_link(span.get_span_context(), {"hamlet.link": "started"})


def end_job_span(ctx: LoggingContext, error: BaseException | None = None) -> None:
    span = ctx.span
    if span is None:
        return
    if error is not None:
        assert _otel is not None
        span.record_exception(error)
        span.set_status(_otel.status(_otel.error_code, type(error).__name__))
    _end(ctx)


def _nearest_span(ctx: LoggingContext | None) -> Span | None:
    while ctx is not None:
        if ctx.span is not None:
            span: Span = ctx.span
            return span
        ctx = ctx.parent
    return None


def _end(ctx: LoggingContext) -> None:
    span, ctx.span = ctx.span, None
    usage = ctx.usage
    span.set_attributes(
        {"db.txn_count": usage.db_txn_count, "db.duration_s": usage.db_s, "cpu_s": usage.cpu_s}
    )
    span.end()
