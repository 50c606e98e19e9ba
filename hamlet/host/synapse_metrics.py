"""The figures Hamlet shares with Synapse, under Synapse's metric names and labels.

So Synapse's published Grafana dashboard shows Hamlet tenants: every
family carries Synapse's own labels (`method`, `servlet`, `tag`, `code`,
`desc`, `name`) and, as Synapse does since it serves several homeservers
per process, `server_name`. A hibernated tenant reports its request
figures (the host keeps them) and nothing of its homeserver's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from hamlet.host.tenant import LATENCY_BUCKETS, Tenant

if TYPE_CHECKING:
    from hamlet.homeserver import HomeServer

SERVER = "server_name"


def _counter(name: str, doc: str, *labels: str) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=[*labels, SERVER])


def _gauge(name: str, doc: str, *labels: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=[*labels, SERVER])


def collect(tenants: list[Tenant]) -> Iterator[Metric]:
    yield from _http(tenants)
    awake = [(t.server_name, t.hs) for t in tenants if t.hs is not None]
    yield from _storage(awake)
    yield from _background(awake)
    yield from _caches(awake)


def _http(tenants: list[Tenant]) -> Iterator[Metric]:
    received = _counter(
        "synapse_http_server_requests_received", "Requests routed", "method", "servlet"
    )
    response_count = _counter(
        "synapse_http_server_response_count", "Responses", "method", "servlet", "tag"
    )
    responses = _counter("synapse_http_server_responses", "Responses", "method", "code")
    response_time = HistogramMetricFamily(
        "synapse_http_server_response_time_seconds",
        "sec",
        labels=["method", "servlet", "tag", "code", SERVER],
    )
    per_response = ("method", "servlet", "tag")
    utime = _counter("synapse_http_server_response_ru_utime_seconds", "sec", *per_response)
    db_count = _counter("synapse_http_server_response_db_txn_count", "", *per_response)
    db_time = _counter("synapse_http_server_response_db_txn_duration_seconds", "sec", *per_response)
    size = _counter("synapse_http_server_response_size", "bytes", *per_response)
    for tenant in tenants:
        server = tenant.server_name
        stats = tenant.stats
        for (method, servlet), n in stats.received_by_servlet.items():
            received.add_metric([method, servlet, server], n)
        by_response: dict[tuple[str, str, str], list[float]] = {}
        by_code: dict[tuple[str, str], int] = {}
        for (method, servlet, tag, code), s in stats.by_servlet.items():
            buckets = [
                (str(bound), float(n)) for bound, n in zip(LATENCY_BUCKETS, s.buckets, strict=True)
            ]
            buckets.append(("+Inf", float(s.count)))
            response_time.add_metric(
                [method, servlet, tag, str(code), server], buckets, s.time_sum_s
            )
            sums = by_response.setdefault((method, servlet, tag), [0, 0.0, 0, 0.0, 0])
            for i, value in enumerate((s.count, s.cpu_s, s.db_txns, s.db_s, s.nbytes)):
                sums[i] += value
            by_code[(method, str(code))] = by_code.get((method, str(code)), 0) + s.count
        for key, (count, cpu_s, txns, db_s, nbytes) in by_response.items():
            labels = [*key, server]
            response_count.add_metric(labels, count)
            utime.add_metric(labels, cpu_s)
            db_count.add_metric(labels, txns)
            db_time.add_metric(labels, db_s)
            size.add_metric(labels, nbytes)
        for (method, status), count in by_code.items():
            responses.add_metric([method, status, server], count)
    yield from (received, response_count, responses, response_time, utime, db_count, db_time, size)


def _storage(awake: list[tuple[str, HomeServer]]) -> Iterator[Metric]:
    txn_count = _counter("synapse_storage_transaction_time_count", "sec", "desc")
    txn_sum = _counter("synapse_storage_transaction_time_sum", "sec", "desc")
    persisted = _counter("synapse_storage_events_persisted_events", "Events persisted")
    for server, hs in awake:
        for desc, (count, seconds) in hs.db.txn_totals.items():
            txn_count.add_metric([desc, server], count)
            txn_sum.add_metric([desc, server], seconds)
        persisted.add_metric([server], hs.events_store.persisted_count)
    yield from (txn_count, txn_sum, persisted)


def _background(awake: list[tuple[str, HomeServer]]) -> Iterator[Metric]:
    starts = _counter("synapse_background_process_start_count", "Runs started", "name")
    in_flight = _gauge("synapse_background_process_in_flight_count", "Runs going on", "name")
    utime = _counter("synapse_background_process_ru_utime_seconds", "sec", "name")
    db_count = _counter("synapse_background_process_db_txn_count", "", "name")
    db_time = _counter("synapse_background_process_db_txn_duration_seconds", "sec", "name")
    for server, hs in awake:
        for name, s in hs.clock.job_stats.items():
            labels = [name, server]
            starts.add_metric(labels, s.starts)
            in_flight.add_metric(labels, s.in_flight)
            utime.add_metric(labels, s.cpu_s)
            db_count.add_metric(labels, s.db_txns)
            db_time.add_metric(labels, s.db_s)
    yield from (starts, in_flight, utime, db_count, db_time)


def _caches(awake: list[tuple[str, HomeServer]]) -> Iterator[Metric]:
    size = _gauge("synapse_util_caches_cache_size", "", "name")
    hits = _gauge("synapse_util_caches_cache_hits", "", "name")
    total = _gauge("synapse_util_caches_cache", "", "name")
    max_size = _gauge("synapse_util_caches_cache_max_size", "", "name")
    evicted = _gauge("synapse_util_caches_cache_evicted_size", "", "name", "reason")
    for server, hs in awake:
        for name, cache in hs.caches().items():
            labels = [name, server]
            size.add_metric(labels, len(cache))
            hits.add_metric(labels, cache.hits)
            total.add_metric(labels, cache.hits + cache.misses)
            max_size.add_metric(labels, cache.max_size)
            evicted.add_metric([name, "size", server], cache.evicted)
    yield from (size, hits, total, max_size, evicted)
