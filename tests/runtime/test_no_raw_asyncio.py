"""Outside hamlet/runtime/, time, tasks and threads go through the Clock (runtime rule 2).

The checker (tests/support/raw_scheduling.py) resolves names, so it is
tested here against every evasive spelling it must see through, and
against the look-alikes it must leave alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import hamlet
from tests.support.raw_scheduling import violations_in

PACKAGE = Path(hamlet.__file__).parent
RUNTIME = PACKAGE / "runtime"


def test_nothing_outside_runtime_schedules_behind_the_clocks_back() -> None:
    found: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if RUNTIME in path.parents:
            continue
        found += violations_in(path.read_text(), str(path.relative_to(PACKAGE.parent)))
    assert found == [], "use hamlet.runtime (Clock, with_timeout) instead:\n" + "\n".join(found)


EVASIVE = {
    "asyncio.sleep": "import asyncio\nawait asyncio.sleep(1)",
    "module alias": "import asyncio as aio\naio.ensure_future(c)",
    "from-import alias": "from asyncio import create_task as ct\nct(c)",
    "function alias": "import asyncio\nEF = asyncio.ensure_future\nEF(c)",
    "wait_for": "import asyncio\nawait asyncio.wait_for(c, 1)",
    "loop variable": "import asyncio\nloop = asyncio.get_running_loop()\nt = loop.create_task(c)",
    "loop inline": "import asyncio\nasyncio.get_running_loop().create_task(c)",
    "get_event_loop call_later": "import asyncio\nasyncio.get_event_loop().call_later(1, f)",
    "Task constructor": "import asyncio\nasyncio.Task(c)",
    "submodule": "import asyncio\nasyncio.tasks.create_task(c)",
    "from submodule": "from asyncio.tasks import ensure_future\nensure_future(c)",
    "TaskGroup": (
        "import asyncio\nasync def f():\n"
        "    async with asyncio.TaskGroup() as tg:\n        tg.create_task(c)"
    ),
    "TaskGroup parameter": (
        "import asyncio\ndef f(group: asyncio.TaskGroup):\n    group.create_task(c)"
    ),
    "asyncio.timeout": (
        "import asyncio\nasync def f():\n    async with asyncio.timeout(1):\n        pass"
    ),
    "asyncio.wait timeout": "import asyncio\nawait asyncio.wait(aws, timeout=1)",
    "run_in_executor": (
        "import asyncio\nloop = asyncio.get_running_loop()\nloop.run_in_executor(None, f)"
    ),
    "run_coroutine_threadsafe": "import asyncio\nasyncio.run_coroutine_threadsafe(c, other)",
    "threading.Timer": "import threading\nthreading.Timer(1, f).start()",
    "threading.Thread": "from threading import Thread\nThread(target=f).start()",
    "loop named clock": (
        "import asyncio\ndef f():\n    clock = asyncio.get_running_loop()\n"
        "    clock.call_later(1, g)"
    ),
    "loop on self": (
        "import asyncio\nclass A:\n    def __init__(self):\n"
        "        self._clock = asyncio.get_running_loop()\n"
        "    def f(self):\n        self._clock.call_at(5, g)"
    ),
    "annotated loop parameter": (
        "from asyncio import AbstractEventLoop\n"
        "def f(clock: AbstractEventLoop):\n    clock.call_later(1, g)"
    ),
    "unknown receiver call_soon": "def f(x):\n    x.call_soon(g)",
    "unknown receiver call_later": "def f(loop):\n    loop.call_later(1, g)",
    "chained alias": "import asyncio\nA = asyncio\nB = A.sleep\nB(1)",
    "thread pool": "import concurrent.futures\nconcurrent.futures.ThreadPoolExecutor(2)",
}


@pytest.mark.parametrize("source", EVASIVE.values(), ids=EVASIVE.keys())
def test_the_checker_flags_each_evasive_form(source: str) -> None:
    assert violations_in(source, "bad.py") != [], source


ALLOWED = {
    "clock methods": (
        "def f(hs, clock, self):\n    hs.clock.call_later(1, g)\n    clock.call_later(1, g)\n"
        "    self._clock.call_later(1, g)\n    self.clock.looping_call(g, 5)\n"
        "    self.clock.run_as_background_process('x', g)"
    ),
    "clock sleep": "async def f(hs):\n    await hs.clock.sleep(1)",
    "loop lookups": (
        "import asyncio\nloop = asyncio.get_running_loop()\nfut = loop.create_future()\n"
        "loop.time()\nasyncio.current_task()\nasyncio.shield(fut)"
    ),
    "asyncio.wait without timeout": "import asyncio\nawait asyncio.wait(aws)",
    "comments and strings": "# asyncio.sleep(1)\ntext = 'loop.call_soon(x)'",
    "lookalike names": (
        "import threading\nlock = threading.Lock()\nevent = threading.Event()\n"
        "def sleep(x): pass\nsleep(1)"
    ),
    "a class of its own named Timer": "class Timer:\n    pass\nTimer()",
}


@pytest.mark.parametrize("source", ALLOWED.values(), ids=ALLOWED.keys())
def test_the_checker_allows_the_clock_and_lookalikes(source: str) -> None:
    assert violations_in(source, "ok.py") == [], source
