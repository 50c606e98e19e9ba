"""Per-tenant figures: the control API's tenant summaries and /metrics.

Counts that need the database (users, rooms) are read at scrape time from
awake tenants only; hibernated tenants report what they had last.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from hamlet.homeserver import HomeServer
from hamlet.host import synapse_metrics
from hamlet.host.exposition import Family, escape, label_text, render
from hamlet.host.tenant import RequestStats, Tenant, TenantState, bucket_pairs
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


UNROUTED = Family(
    "hamlet_http_unrouted_requests", "counter", "HTTP requests for a host no tenant serves"
)
REQUESTS = Family("hamlet_http_requests", "counter", "HTTP requests served")
ERRORS = Family("hamlet_http_server_errors", "counter", "HTTP requests answered with a 5xx")
LATENCY = Family("hamlet_http_request_duration_seconds", "histogram", "HTTP request wall time")
DB_TIME = Family("hamlet_db_time_seconds", "counter", "Time spent in database transactions")
DB_TXNS = Family("hamlet_db_transactions", "counter", "Database transactions run")
DB_STATEMENTS = Family("hamlet_db_statements", "counter", "Statements run in database transactions")
SYNCS = Family("hamlet_active_syncs", "gauge", "/sync requests waiting")
USERS = Family("hamlet_users", "gauge", "Registered users")
ROOMS = Family("hamlet_rooms", "gauge", "Rooms known to the server")
MEMORY = Family("hamlet_memory_estimate_bytes", "gauge", "Estimated memory held by the tenant")
STATE = Family("hamlet_tenant_state", "gauge", "1 for the tenant's current state")
TENANT_FAMILIES = (
    REQUESTS,
    ERRORS,
    LATENCY,
    DB_TIME,
    DB_TXNS,
    DB_STATEMENTS,
    SYNCS,
    USERS,
    ROOMS,
    MEMORY,
    STATE,
)
#: Every family a tenant writes to, in the order of the exposition.
FAMILIES = (
    *TENANT_FAMILIES,
    *synapse_metrics.HTTP_FAMILIES,
    *synapse_metrics.AWAKE_FAMILIES,
)
_NOTHING_AWAKE = [""] * len(synapse_metrics.AWAKE_FAMILIES)


def _tenant_chunk(tenant: Tenant) -> list[str]:
    """The tenant's text for each of `FAMILIES`."""
    return _chunk(tenant.server_name, tenant.stats, tenant.hs, tenant.last_counts, tenant.state)


def _chunk(
    server_name: str,
    stats: RequestStats,
    hs: HomeServer | None,
    counts: tuple[int | None, int | None],
    state: TenantState,
) -> list[str]:
    server = [("server_name", server_name)]
    users, rooms = counts
    buckets = bucket_pairs(stats.buckets)
    labels = label_text(server)
    own = [
        REQUESTS.line(labels, stats.count),
        ERRORS.line(labels, stats.errors),
        LATENCY.histogram(server, buckets, stats.count, stats.latency_sum_s),
        DB_TIME.line(labels, hs.db.total_time_s if hs else 0.0),
        DB_TXNS.line(labels, hs.db.total_txns if hs else 0),
        DB_STATEMENTS.line(labels, hs.db.total_statements if hs else 0),
        SYNCS.line(labels, hs.sync.active_syncs if hs else 0),
        USERS.line(labels, users) if users is not None else "",
        ROOMS.line(labels, rooms) if rooms is not None else "",
        MEMORY.line(labels, hs.memory_estimate_bytes() if hs else 0),
        STATE.sample([*server, ("state", state.value)], 1),
    ]
    awake = synapse_metrics.awake_chunk(server_name, hs) if hs else _NOTHING_AWAKE
    return [*own, *synapse_metrics.http_chunk(server_name, stats), *awake]


#: Where the server name goes in `_UNUSED_TEXT`: no server name can contain it.
_NAME_SLOT = "\x00server_name\x00"
#: By state, the text of a tenant asleep and unused since the process started.
_UNUSED_TEXT: dict[TenantState, list[str]] = {}


def _unused_chunk(tenant: Tenant) -> list[str] | None:
    """The text of a tenant with no homeserver, no request and no counts since start.

    After a restart that is every hibernated tenant, and each one's text
    differs from the others' only by its name: written once, then the name
    filled in (the first scrape at 10,000 tenants wrote each in full).
    """
    if tenant.stats.version or tenant.last_counts != (None, None):
        return None
    text = _UNUSED_TEXT.get(tenant.state)
    if text is None:
        text = _chunk(_NAME_SLOT, RequestStats(), None, (None, None), tenant.state)
        _UNUSED_TEXT[tenant.state] = text
    name = escape(tenant.server_name)
    return [part.replace(_NAME_SLOT, name) for part in text]


def _cached_chunk(tenant: Tenant) -> list[str]:
    """A tenant without a homeserver changes only by a request or a scrape's counts:
    its text is written again only then (10,000 hibernated tenants cost a join)."""
    if tenant.hs is not None:
        tenant.metrics_text = None
        return _tenant_chunk(tenant)
    key = (tenant.state, tenant.stats.version, tenant.last_counts)
    cached = tenant.metrics_text
    if cached is not None and cached[0] == key:
        return cached[1]
    chunk = _unused_chunk(tenant) or _tenant_chunk(tenant)
    tenant.metrics_text = (key, chunk)
    return chunk


async def render_metrics(manager: Any) -> bytes:
    tenants = manager.registry.tenants()
    for tenant in tenants:
        await refresh_counts(tenant)
    unrouted = UNROUTED.sample([], manager.registry.unrouted.count)
    chunks: list[Sequence[str]] = [[unrouted] + [""] * len(FAMILIES)]
    chunks.extend(["", *_cached_chunk(tenant)] for tenant in tenants)
    return render((UNROUTED, *FAMILIES), chunks)
