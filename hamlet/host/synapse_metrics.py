"""The figures Hamlet shares with Synapse, under Synapse's metric names and labels.

So Synapse's published Grafana dashboard shows Hamlet tenants: every
family carries Synapse's own labels (`method`, `servlet`, `tag`, `code`,
`desc`, `name`) and, as Synapse does since it serves several homeservers
per process, `server_name`. A hibernated tenant reports its request
figures (the host keeps them) and nothing of its homeserver's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hamlet.host.exposition import Family, label_text
from hamlet.host.tenant import RequestStats, bucket_pairs

if TYPE_CHECKING:
    from hamlet.homeserver import HomeServer

SERVER = "server_name"


def _counter(name: str, doc: str) -> Family:
    return Family(name, "counter", doc)


def _gauge(name: str, doc: str) -> Family:
    return Family(name, "gauge", doc)


RECEIVED = _counter("synapse_http_server_requests_received", "Requests routed")
RESPONSE_COUNT = _counter("synapse_http_server_response_count", "Responses")
RESPONSES = _counter("synapse_http_server_responses", "Responses")
RESPONSE_TIME = Family("synapse_http_server_response_time_seconds", "histogram", "sec")
RESPONSE_UTIME = _counter("synapse_http_server_response_ru_utime_seconds", "sec")
RESPONSE_DB_COUNT = _counter("synapse_http_server_response_db_txn_count", "")
RESPONSE_DB_TIME = _counter("synapse_http_server_response_db_txn_duration_seconds", "sec")
RESPONSE_SIZE = _counter("synapse_http_server_response_size", "bytes")
#: From the figures the host keeps for every tenant, awake or not.
HTTP_FAMILIES = (
    RECEIVED,
    RESPONSE_COUNT,
    RESPONSES,
    RESPONSE_TIME,
    RESPONSE_UTIME,
    RESPONSE_DB_COUNT,
    RESPONSE_DB_TIME,
    RESPONSE_SIZE,
)

TXN_COUNT = _counter("synapse_storage_transaction_time_count", "sec")
TXN_SUM = _counter("synapse_storage_transaction_time_sum", "sec")
PERSISTED = _counter("synapse_storage_events_persisted_events", "Events persisted")
JOB_STARTS = _counter("synapse_background_process_start_count", "Runs started")
JOB_IN_FLIGHT = _gauge("synapse_background_process_in_flight_count", "Runs going on")
JOB_UTIME = _counter("synapse_background_process_ru_utime_seconds", "sec")
JOB_DB_COUNT = _counter("synapse_background_process_db_txn_count", "")
JOB_DB_TIME = _counter("synapse_background_process_db_txn_duration_seconds", "sec")
CACHE_SIZE = _gauge("synapse_util_caches_cache_size", "")
CACHE_HITS = _gauge("synapse_util_caches_cache_hits", "")
CACHE_LOOKUPS = _gauge("synapse_util_caches_cache", "")
CACHE_MAX_SIZE = _gauge("synapse_util_caches_cache_max_size", "")
CACHE_EVICTED = _gauge("synapse_util_caches_cache_evicted_size", "")
#: From an awake tenant's homeserver.
AWAKE_FAMILIES = (
    TXN_COUNT,
    TXN_SUM,
    PERSISTED,
    JOB_STARTS,
    JOB_IN_FLIGHT,
    JOB_UTIME,
    JOB_DB_COUNT,
    JOB_DB_TIME,
    CACHE_SIZE,
    CACHE_HITS,
    CACHE_LOOKUPS,
    CACHE_MAX_SIZE,
    CACHE_EVICTED,
)


def http_chunk(server_name: str, stats: RequestStats) -> list[str]:
    """A tenant's text for each of `HTTP_FAMILIES`, from its request figures."""
    server = (SERVER, server_name)
    received = [
        RECEIVED.sample([("method", method), ("servlet", servlet), server], n)
        for (method, servlet), n in stats.received_by_servlet.items()
    ]
    times: list[str] = []
    by_response: dict[tuple[str, str, str], list[float]] = {}
    by_code: dict[tuple[str, str], int] = {}
    for (method, servlet, tag, code), s in stats.by_servlet.items():
        buckets = bucket_pairs(s.buckets)
        labels = [
            ("method", method),
            ("servlet", servlet),
            ("tag", tag),
            ("code", str(code)),
            server,
        ]
        times.append(RESPONSE_TIME.histogram(labels, buckets, s.count, s.time_sum_s))
        sums = by_response.setdefault((method, servlet, tag), [0, 0.0, 0, 0.0, 0])
        for i, value in enumerate((s.count, s.cpu_s, s.db_txns, s.db_s, s.nbytes)):
            sums[i] += value
        by_code[(method, str(code))] = by_code.get((method, str(code)), 0) + s.count
    per_response: list[list[str]] = [[], [], [], [], []]
    families = (RESPONSE_COUNT, RESPONSE_UTIME, RESPONSE_DB_COUNT, RESPONSE_DB_TIME, RESPONSE_SIZE)
    for (method, servlet, tag), sums in by_response.items():
        labels = [("method", method), ("servlet", servlet), ("tag", tag), server]
        for lines, family, value in zip(per_response, families, sums, strict=True):
            lines.append(family.sample(labels, value))
    responses = [
        RESPONSES.sample([("method", method), ("code", status), server], count)
        for (method, status), count in by_code.items()
    ]
    count, utime, db_count, db_time, size = ("".join(lines) for lines in per_response)
    return [
        "".join(received),
        count,
        "".join(responses),
        "".join(times),
        utime,
        db_count,
        db_time,
        size,
    ]


def awake_chunk(server_name: str, hs: HomeServer) -> list[str]:
    """An awake tenant's text for each of `AWAKE_FAMILIES`."""
    server = (SERVER, server_name)
    lines: dict[Family, list[str]] = {family: [] for family in AWAKE_FAMILIES}
    for desc, (count, seconds) in hs.db.txn_totals.items():
        labels = label_text([("desc", desc), server])
        lines[TXN_COUNT].append(TXN_COUNT.line(labels, count))
        lines[TXN_SUM].append(TXN_SUM.line(labels, seconds))
    lines[PERSISTED].append(PERSISTED.sample([server], hs.events_store.persisted_count))
    for name, job in hs.clock.job_stats.items():
        labels = label_text([("name", name), server])
        lines[JOB_STARTS].append(JOB_STARTS.line(labels, job.starts))
        lines[JOB_IN_FLIGHT].append(JOB_IN_FLIGHT.line(labels, job.in_flight))
        lines[JOB_UTIME].append(JOB_UTIME.line(labels, job.cpu_s))
        lines[JOB_DB_COUNT].append(JOB_DB_COUNT.line(labels, job.db_txns))
        lines[JOB_DB_TIME].append(JOB_DB_TIME.line(labels, job.db_s))
    for name, cache in hs.caches().items():
        labels = label_text([("name", name), server])
        lines[CACHE_SIZE].append(CACHE_SIZE.line(labels, len(cache)))
        lines[CACHE_HITS].append(CACHE_HITS.line(labels, cache.hits))
        lines[CACHE_LOOKUPS].append(CACHE_LOOKUPS.line(labels, cache.hits + cache.misses))
        lines[CACHE_MAX_SIZE].append(CACHE_MAX_SIZE.line(labels, cache.max_size))
        evicted = [("name", name), ("reason", "size"), server]
        lines[CACHE_EVICTED].append(CACHE_EVICTED.sample(evicted, cache.evicted))
    return ["".join(lines[family]) for family in AWAKE_FAMILIES]
