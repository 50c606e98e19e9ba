"""Requests on the real front door: contexts never leak between requests or into timers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import make_mocked_request

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.api.server import HttpFrontend
from hamlet.config import HomeServerConfig
from hamlet.runtime.logcontext import LoggingContext, current_context
from hamlet.runtime.timeout import with_timeout
from tests.conftest import advance
from tests.support.harness import Harness, RecordingHandler, start_harness

MakeConfig = Callable[..., HomeServerConfig]
logger = logging.getLogger(__name__)


def where() -> dict[str, Any]:
    ctx = current_context()
    assert ctx is not None
    return {"server_name": ctx.server_name, "request": ctx.request, "name": ctx.name}


async def slow(req: ApiRequest) -> dict[str, Any]:
    logger.info("slow started")
    await req.hs.db.fetchval("before_sleep", "SELECT 1")
    await req.hs.clock.sleep(100)
    logger.info("slow finished")
    return {}


async def write(req: ApiRequest) -> dict[str, Any]:
    logger.info("write started")
    await req.hs.clock.sleep(5)
    await req.hs.db.fetchval("after_sleep", "SELECT 1")
    logger.info("write finished")
    return {}


async def fast(req: ApiRequest) -> dict[str, Any]:
    logger.info("fast handled")
    return where()


async def schedules(req: ApiRequest) -> dict[str, Any]:
    hs = req.hs
    seen = SCHEDULED

    def tick() -> None:
        seen.append({"kind": "looping", **where()})
        logger.info("tick from request")

    def later() -> None:
        seen.append({"kind": "later", **where()})

    async def job() -> None:
        seen.append({"kind": "background", **where()})
        logger.info("background from request")

    hs.clock.looping_call(tick, 5)
    hs.clock.call_later(1, later)
    hs.clock.run_as_background_process("from_request", job)
    return where()


async def timeout(req: ApiRequest) -> dict[str, Any]:
    try:
        await with_timeout(req.hs.clock.sleep(60), 5, req.hs.clock)
    except TimeoutError:
        logger.info("gave up waiting")
    return where()


async def busy(req: ApiRequest) -> dict[str, Any]:
    total = 0
    for _ in range(5):
        total += sum(range(100_000))
        await req.hs.db.fetchval("busy", "SELECT 1")
    return {"total": total}


SCHEDULED: list[dict[str, Any]] = []


def make_router() -> Router:
    router = Router()
    router.add("GET", "/slow", slow)
    router.add("GET", "/fast", fast)
    router.add("POST", "/write", write)
    router.add("GET", "/schedules", schedules)
    router.add("GET", "/timeout", timeout)
    router.add("GET", "/busy", busy)
    return router


@pytest.fixture
async def h(make_hs_config: MakeConfig) -> AsyncIterator[Harness]:
    harness = await start_harness([make_hs_config()], router=make_router())
    yield harness
    await harness.close()


def mocked(path: str, host: str, method: str = "GET") -> Any:
    return make_mocked_request(method, path, headers={"Host": host})


async def test_cancelled_request_leaks_no_context_into_the_next(
    h: Harness, log_records: RecordingHandler
) -> None:
    """Like aiohttp's per-connection task: a cancelled request, then the next one."""
    frontend = h.frontend
    assert isinstance(frontend, HttpFrontend)
    hs = h.hs
    before = current_context()
    outcome: list[Any] = []

    async def connection() -> None:
        try:
            await frontend.handle(mocked("/slow", hs.server_name))
        except asyncio.CancelledError:
            task = asyncio.current_task()
            assert task is not None
            task.uncancel()
            outcome.append("cancelled")
        outcome.append(current_context())
        response = await frontend.handle(mocked("/fast", hs.server_name))
        outcome.append(response)
        outcome.append(current_context())

    task = asyncio.get_running_loop().create_task(connection())
    await advance(1)
    assert log_records.matching("slow started")
    task.cancel()  # the client disconnected mid-await
    await task
    assert current_context() is before
    assert outcome[0] == "cancelled"
    assert outcome[1] is None and outcome[3] is None
    body = orjson.loads(outcome[2].body)
    assert body["server_name"] == hs.server_name
    assert body["request"].startswith("GET-")
    (slow_line,) = log_records.matching("slow started")
    (fast_line,) = log_records.matching("fast handled")
    assert fast_line.request == body["request"] != slow_line.request  # type: ignore[attr-defined]
    assert log_records.matching("slow finished") == []
    # The cancelled request still wrote its access line, as 499.
    access = [r for r in log_records.records if r.name == "hamlet.access"]
    assert [r.args[8] for r in access] == [499, 200]  # type: ignore[index]
    assert access[0].request == slow_line.request  # type: ignore[attr-defined]
    # Its timers are gone; the database is free for the next request.
    await advance(200)
    assert log_records.matching("slow finished") == []
    assert await hs.db.fetchval("after", "SELECT 5") == 5


async def test_a_disconnect_lets_a_write_finish_under_its_context_then_logs_499(
    h: Harness, log_records: RecordingHandler
) -> None:
    frontend = h.frontend
    assert isinstance(frontend, HttpFrontend)
    handling = asyncio.get_running_loop().create_task(
        frontend.handle(mocked("/write", h.hs.server_name, "POST"))
    )
    await advance(1)
    handling.cancel()  # the client hung up mid-write
    await advance(1)
    assert not handling.done()  # still writing
    await advance(5)
    with pytest.raises(asyncio.CancelledError):
        await handling
    (started,) = log_records.matching("write started")
    (finished,) = log_records.matching("write finished")
    assert finished.request == started.request  # type: ignore[attr-defined]
    assert finished.server_name == h.hs.server_name  # type: ignore[attr-defined]
    (access,) = [r for r in log_records.records if r.name == "hamlet.access"]
    assert access.args[8] == 499  # type: ignore[index]
    assert access.request == started.request  # type: ignore[attr-defined]
    assert current_context() is None


async def test_real_request_after_abandoned_slow_request(
    h: Harness, log_records: RecordingHandler
) -> None:
    client_task = asyncio.get_running_loop().create_task(h.request("GET", "/slow"))
    await advance(1)
    client_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await client_task
    resp = await h.request("GET", "/fast")
    assert resp.status == 200
    assert resp.json["server_name"] == h.hs.server_name
    (slow_line,) = log_records.matching("slow started")
    assert resp.json["request"] != slow_line.request  # type: ignore[attr-defined]
    assert current_context() is None
    await advance(200)


async def test_work_scheduled_from_a_request_runs_under_the_homeserver(
    h: Harness, log_records: RecordingHandler
) -> None:
    SCHEDULED.clear()
    resp = await h.request("GET", "/schedules")
    request_name = resp.json["request"]
    assert request_name.startswith("GET-")
    await advance(11)
    seen = list(SCHEDULED)
    name = h.hs.server_name
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for s in seen:
        by_kind.setdefault(s["kind"], []).append(s)
    assert (
        by_kind["looping"]
        == [{"kind": "looping", "server_name": name, "request": None, "name": "looping_call"}] * 2
    )
    assert by_kind["later"] == [
        {"kind": "later", "server_name": name, "request": None, "name": "call_later"}
    ]
    (bg,) = by_kind["background"]
    assert bg["server_name"] == name and bg["request"] is None
    assert bg["name"].startswith("background-from_request-")
    for line in log_records.matching("tick from request") + log_records.matching(
        "background from request"
    ):
        assert line.server_name == name  # type: ignore[attr-defined]
        assert line.request != request_name  # type: ignore[attr-defined]


async def test_timeout_inside_a_request_logs_under_the_request(
    h: Harness, log_records: RecordingHandler
) -> None:
    pending = asyncio.get_running_loop().create_task(h.request("GET", "/timeout"))
    await advance(5)
    resp = await pending
    assert resp.status == 200
    assert resp.json["server_name"] == h.hs.server_name
    (timed_out,) = log_records.matching("Timed out after")
    (gave_up,) = log_records.matching("gave up waiting")
    for line in (timed_out, gave_up):
        assert line.request == resp.json["request"]  # type: ignore[attr-defined]
        assert line.server_name == h.hs.server_name  # type: ignore[attr-defined]


async def test_cpu_and_db_time_are_charged_to_the_request(
    h: Harness, log_records: RecordingHandler
) -> None:
    resp = await h.request("GET", "/busy")
    assert resp.status == 200
    (line,) = [r for r in log_records.records if r.name == "hamlet.access"]
    args: Any = line.args
    _ip, _tenant, _user, wall, cpu, db, txns, *_ = args
    assert txns == 5
    assert db > 0
    assert cpu > 0
    assert wall >= db
    assert f"({db:.3f}sec, 5 txns)" in line.getMessage()


async def test_unknown_host_is_logged_under_the_host_context(
    h: Harness, log_records: RecordingHandler
) -> None:
    with LoggingContext("test-body", "outer.test") as mine:
        resp = await h.request("GET", "/fast", host="stranger.test")
        assert current_context() is mine
    assert resp.status == 404 and resp.json["errcode"] == "M_UNRECOGNIZED"
    (line,) = log_records.matching("unknown host")
    assert line.server_name == "hamlet-host"  # type: ignore[attr-defined]
    assert line.request != "sentinel"  # type: ignore[attr-defined]
