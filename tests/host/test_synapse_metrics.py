"""/metrics under Synapse's names and labels (plus server_name), scraped after real traffic."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import advance
from tests.host import test_tenants
from tests.host.test_tenants import Host, MakeHost, _metrics

make_host = test_tenants.make_host  # the fixture: a HostProcess with a control API

TENANT = "synapse-metrics.test"  # its own schema on the shared PostgreSQL


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], metric: str, **labels: str
) -> float:
    return samples.get((metric, frozenset(labels.items())), 0.0)


async def _traffic(host: Host, token: str) -> None:
    """A room with a message, an initial and an incremental sync."""
    status, room = await host.call(TENANT, "POST", "/_matrix/client/v3/createRoom", {}, token)
    assert status == 200
    room_id = room["room_id"]
    path = f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/t{id(room)}"
    status, _ = await host.call(TENANT, "PUT", path, {"msgtype": "m.text", "body": "hi"}, token)
    assert status == 200
    status, first = await host.call(TENANT, "GET", "/_matrix/client/v3/sync", token=token)
    assert status == 200
    since = first["next_batch"]
    status, _ = await host.call(
        TENANT, "GET", f"/_matrix/client/v3/sync?since={since}&timeout=0", token=token
    )
    assert status == 200


async def test_synapse_metric_names_move_with_traffic_per_tenant(make_host: MakeHost) -> None:
    host = await make_host()
    status, _ = await host.control("POST", "/tenants", {"server_name": TENANT})
    assert status == 200
    token = await host.register(TENANT, "dave")
    await _traffic(host, token)

    hs = host.process.registry.get(TENANT)
    assert hs is not None

    async def job() -> None:
        await hs.db.fetchval("metrics_test_job", "SELECT 1")

    hs.clock.run_as_background_process("metrics_test_job", job)
    await advance(1)

    before = _samples(await _metrics(host))
    t = {"server_name": TENANT}
    received = "synapse_http_server_requests_received_total"
    assert _value(before, received, method="POST", servlet="post_login", **t) == 1
    assert _value(before, received, method="POST", servlet="create_room", **t) == 1
    assert _value(before, received, method="PUT", servlet="send_event", **t) == 1
    assert _value(before, received, method="GET", servlet="sync", **t) == 2
    # The main tenant served none of it.
    assert _value(before, received, method="GET", servlet="sync", server_name="main.test") == 0

    count = "synapse_http_server_response_count_total"
    for tag in ("initial_sync", "incremental_sync"):
        assert _value(before, count, method="GET", servlet="sync", tag=tag, **t) == 1
        assert (
            _value(
                before,
                "synapse_http_server_response_time_seconds_count",
                method="GET",
                servlet="sync",
                tag=tag,
                code="200",
                **t,
            )
            == 1
        )
    assert _value(before, count, method="PUT", servlet="send_event", tag="", **t) == 1
    assert _value(before, "synapse_http_server_responses_total", method="GET", code="200", **t) == 2
    assert (
        _value(
            before,
            "synapse_http_server_response_db_txn_count_total",
            method="PUT",
            servlet="send_event",
            tag="",
            **t,
        )
        > 0
    )

    persisted = _value(before, "synapse_storage_events_persisted_events_total", **t)
    assert persisted >= 6  # the room's creation events and the message
    assert (
        _value(before, "synapse_storage_transaction_time_count_total", desc="persist_event", **t)
        == persisted
    )
    assert (
        _value(before, "synapse_storage_transaction_time_sum_total", desc="persist_event", **t) > 0
    )

    name = {"name": "metrics_test_job", **t}
    assert _value(before, "synapse_background_process_start_count_total", **name) == 1
    assert _value(before, "synapse_background_process_in_flight_count", **name) == 0
    assert _value(before, "synapse_background_process_db_txn_count_total", **name) == 1
    assert _value(before, "synapse_background_process_db_txn_duration_seconds_total", **name) > 0
    assert ("synapse_background_process_ru_utime_seconds_total", frozenset(name.items())) in before

    cache = {"name": "EventCache.cache", **t}
    lookups = _value(before, "synapse_util_caches_cache", **cache)
    assert lookups > 0
    assert 0 <= _value(before, "synapse_util_caches_cache_hits", **cache) <= lookups
    assert _value(before, "synapse_util_caches_cache_max_size", **cache) > 0

    await _traffic(host, token)
    after = _samples(await _metrics(host))
    assert _value(after, received, method="GET", servlet="sync", **t) == 4
    assert _value(after, "synapse_storage_events_persisted_events_total", **t) > persisted
    assert _value(after, "synapse_util_caches_cache", **cache) > lookups
    assert _value(after, count, method="GET", servlet="sync", tag="initial_sync", **t) == 2
