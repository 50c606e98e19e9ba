"""Per-tenant figures: the control API's tenant summaries and /metrics.

Counts that need the database (users, rooms) are read at scrape time from
awake tenants only; hibernated tenants report what they had last.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from hamlet.host import synapse_metrics
from hamlet.host.tenant import LATENCY_BUCKETS, RequestStats, Tenant
from hamlet.storage.errors import StorageError

logger = logging.getLogger(__name__)

#: The transactions `refresh_counts` runs to count a tenant's users and rooms.
COUNT_TXNS = 2


async def refresh_counts(tenant: Tenant) -> None:
    """Read users and rooms of an awake tenant; a hibernated one keeps its last figures.

    One tenant must never fail a scrape of all: one whose database fails
    (closed by a shutdown the hold could not stop) keeps its last figures too.
    """
    async with tenant.peek() as hs:
        if hs is None:
            return
        # No transaction since the last count (of this homeserver: a wake
        # starts a new one) means nothing changed: 1,000 idle awake tenants
        # cost no queries. Taken before counting, plus the count's own two
        # transactions, so a write finishing meanwhile makes the next scrape count.
        before = (tenant.wake_count, hs.db.total_txns)
        if tenant.counted_at == before:
            return
        try:
            tenant.last_counts = (
                await hs.account_store.count_users(),
                await hs.rooms_store.count_rooms(),
            )
        except StorageError as e:
            logger.warning("No counts from tenant %s this time: %s", tenant.server_name, e)
            return
        tenant.counted_at = (before[0], before[1] + COUNT_TXNS)


def tenant_summary(tenant: Tenant, now: float) -> dict[str, Any]:
    hs = tenant.hs
    stats = tenant.stats
    users, rooms = tenant.last_counts
    return {
        "server_name": tenant.server_name,
        "state": tenant.state.value,
        "static": tenant.static,
        "idle_s": round(now - tenant.last_activity, 1),
        "inflight": tenant.inflight,
        "requests": stats.count,
        "avg_latency_ms": round(1000 * stats.latency_sum_s / stats.count, 2) if stats.count else 0,
        "wakes": tenant.wake_count,
        "users": users,
        "rooms": rooms,
        "active_syncs": hs.sync.active_syncs if hs is not None else 0,
        "db_time_s": round(hs.db.total_time_s, 3) if hs is not None else 0.0,
        "memory_estimate_bytes": hs.memory_estimate_bytes() if hs is not None else 0,
    }


class _Snapshot:
    """Figures gathered (asynchronously) before prometheus_client renders them."""

    def __init__(self) -> None:
        self.rows: list[tuple[Tenant, int | None, int | None]] = []
        self.unrouted = RequestStats()


class _SnapshotCollector:
    def __init__(self, snapshot: _Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        label = ["server_name"]
        requests = CounterMetricFamily("hamlet_http_requests", "HTTP requests served", labels=label)
        errors = CounterMetricFamily(
            "hamlet_http_server_errors", "HTTP requests answered with a 5xx", labels=label
        )
        latency = HistogramMetricFamily(
            "hamlet_http_request_duration_seconds", "HTTP request wall time", labels=label
        )
        db_time = CounterMetricFamily(
            "hamlet_db_time_seconds", "Time spent in database transactions", labels=label
        )
        db_txns = CounterMetricFamily(
            "hamlet_db_transactions", "Database transactions run", labels=label
        )
        syncs = GaugeMetricFamily("hamlet_active_syncs", "/sync requests waiting", labels=label)
        users = GaugeMetricFamily("hamlet_users", "Registered users", labels=label)
        rooms = GaugeMetricFamily("hamlet_rooms", "Rooms known to the server", labels=label)
        memory = GaugeMetricFamily(
            "hamlet_memory_estimate_bytes", "Estimated memory held by the tenant", labels=label
        )
        state = GaugeMetricFamily(
            "hamlet_tenant_state", "1 for the tenant's current state", labels=[*label, "state"]
        )
        for tenant, n_users, n_rooms in self.snapshot.rows:
            name = [tenant.server_name]
            stats = tenant.stats
            requests.add_metric(name, stats.count)
            errors.add_metric(name, stats.errors)
            buckets = [
                (str(bound), float(count))
                for bound, count in zip(LATENCY_BUCKETS, stats.buckets, strict=True)
            ]
            buckets.append(("+Inf", float(stats.count)))
            latency.add_metric(name, buckets, stats.latency_sum_s)
            hs = tenant.hs
            db_time.add_metric(name, hs.db.total_time_s if hs else 0.0)
            db_txns.add_metric(name, hs.db.total_txns if hs else 0)
            syncs.add_metric(name, hs.sync.active_syncs if hs else 0)
            memory.add_metric(name, hs.memory_estimate_bytes() if hs else 0)
            if n_users is not None:
                users.add_metric(name, n_users)
            if n_rooms is not None:
                rooms.add_metric(name, n_rooms)
            state.add_metric([tenant.server_name, tenant.state.value], 1)
        unrouted = CounterMetricFamily(
            "hamlet_http_unrouted_requests", "HTTP requests for a host no tenant serves"
        )
        unrouted.add_metric([], self.snapshot.unrouted.count)
        yield unrouted
        yield from (requests, errors, latency, db_time, db_txns, syncs, users, rooms, memory, state)
        yield from synapse_metrics.collect([tenant for tenant, _, _ in self.snapshot.rows])


async def render_metrics(manager: Any) -> bytes:
    snapshot = _Snapshot()
    snapshot.unrouted = manager.registry.unrouted
    for tenant in manager.registry.tenants():
        await refresh_counts(tenant)
        n_users, n_rooms = tenant.last_counts
        snapshot.rows.append((tenant, n_users, n_rooms))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    data: bytes = generate_latest(registry)
    return data
