"""Log records carry the logging context they were created in."""

from __future__ import annotations

import asyncio
import logging

from hamlet.runtime.logcontext import (
    DEFAULT_LOG_FORMAT,
    SENTINEL_REQUEST,
    SENTINEL_SERVER_NAME,
    LoggingContext,
    current_context,
    fresh_context,
    measure_cpu,
)
from tests.support.harness import RecordingHandler

logger = logging.getLogger(__name__)


def test_record_outside_any_context_reads_sentinel(log_records: RecordingHandler) -> None:
    assert current_context() is None
    logger.info("outside")
    (record,) = log_records.matching("outside")
    assert record.server_name == SENTINEL_SERVER_NAME  # type: ignore[attr-defined]
    assert record.request == SENTINEL_REQUEST  # type: ignore[attr-defined]


def test_record_carries_server_name_and_request(log_records: RecordingHandler) -> None:
    with LoggingContext("GET-1", "a.test", request="GET-1"):
        logger.info("inside request")
    with LoggingContext("looping_call", "b.test"):
        logger.info("inside job")
    (req,) = log_records.matching("inside request")
    assert (req.server_name, req.request) == ("a.test", "GET-1")  # type: ignore[attr-defined]
    (job,) = log_records.matching("inside job")
    # Without a request the context's name stands in for it.
    assert (job.server_name, job.request) == ("b.test", "looping_call")  # type: ignore[attr-defined]
    assert current_context() is None


def test_record_keeps_the_context_it_was_created_in(log_records: RecordingHandler) -> None:
    # The attributes are set when the record is made, not when a handler sees it.
    with LoggingContext("GET-7", "a.test", request="GET-7"):
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "made", (), None)
    formatted = logging.Formatter(DEFAULT_LOG_FORMAT).format(record)
    assert " - a.test - " in formatted
    assert " - GET-7 - made" in formatted


def test_default_format_renders_outside_context() -> None:
    record = logger.makeRecord(logger.name, logging.WARNING, __file__, 42, "hello %s", ("x",), None)
    text = logging.Formatter(DEFAULT_LOG_FORMAT).format(record)
    assert (
        f" - {SENTINEL_SERVER_NAME} - {__name__} - 42 - WARNING - {SENTINEL_REQUEST} - hello x"
        in (text)
    )


def test_nested_contexts_restore_the_outer_one() -> None:
    with LoggingContext("outer", "a.test") as outer:
        with LoggingContext("inner", "a.test") as inner:
            assert current_context() is inner
        assert current_context() is outer
    assert current_context() is None


def test_child_charges_its_parents() -> None:
    with LoggingContext("GET-1", "a.test", request="GET-1") as parent:
        child = parent.child("sub")
        child.add_db_time(0.25)
        child.add_cpu_time(0.5)
    assert child.request == "GET-1" and child.server_name == "a.test"
    assert parent.usage.db_s == 0.25 and parent.usage.db_txn_count == 1
    assert parent.usage.cpu_s == 0.5


def test_fresh_context_holds_only_the_tenant() -> None:
    with LoggingContext("GET-1", "a.test", request="GET-1"):
        ctx = fresh_context("call_later", "a.test")
        inner = ctx.run(current_context)
    assert inner is not None
    assert (inner.name, inner.server_name, inner.request) == ("call_later", "a.test", None)
    assert inner.parent is None


async def test_measure_cpu_charges_the_context() -> None:
    async def busy() -> int:
        total = 0
        for _ in range(3):
            total += sum(range(200_000))
            await asyncio.sleep(0)
        return total

    with LoggingContext("GET-1", "a.test", request="GET-1") as ctx:
        result = await measure_cpu(busy(), ctx)
    assert result == 3 * sum(range(200_000))
    assert ctx.usage.cpu_s > 0


async def test_measure_cpu_passes_exceptions_through() -> None:
    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    with LoggingContext("GET-1", "a.test") as ctx:
        try:
            await measure_cpu(fails(), ctx)
        except ValueError as e:
            assert str(e) == "boom"
        else:
            raise AssertionError("no exception")
