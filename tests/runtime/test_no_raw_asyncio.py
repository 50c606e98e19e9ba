"""Outside hamlet/runtime/, time and tasks go through the Clock (runtime rule 2).

An AST scan, so comments and strings do not count and aliases are caught
wherever the call is spelt as an attribute of something.
"""

from __future__ import annotations

import ast
from pathlib import Path

import hamlet

PACKAGE = Path(hamlet.__file__).parent
RUNTIME = PACKAGE / "runtime"

ASYNCIO_FUNCTIONS = {"sleep", "create_task", "ensure_future", "wait_for", "get_event_loop"}
LOOP_METHODS = {"call_soon", "call_soon_threadsafe", "call_at"}


def _receiver_name(node: ast.expr) -> str:
    """The last name of a receiver expression: `self.hs.clock` -> `clock`."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        return _receiver_name(node.func)
    return ""


def violations_in(source: str, filename: str) -> list[str]:
    tree = ast.parse(source, filename)
    asyncio_aliases = {"asyncio"}
    direct_imports: set[str] = set()
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "asyncio" and alias.asname:
                    asyncio_aliases.add(alias.asname)
        elif isinstance(node, ast.ImportFrom) and node.module == "asyncio":
            for alias in node.names:
                if alias.name in ASYNCIO_FUNCTIONS:
                    direct_imports.add(alias.asname or alias.name)
                    found.append(f"{filename}:{node.lineno}: from asyncio import {alias.name}")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        where = f"{filename}:{node.lineno}"
        if isinstance(func, ast.Attribute):
            receiver = _receiver_name(func.value)
            if func.attr in ASYNCIO_FUNCTIONS and receiver in asyncio_aliases:
                found.append(f"{where}: asyncio.{func.attr}()")
            elif func.attr in LOOP_METHODS:
                found.append(f"{where}: .{func.attr}() (use the Clock)")
            elif func.attr == "call_later" and not receiver.lower().endswith("clock"):
                found.append(f"{where}: {receiver}.call_later() (use the Clock)")
        elif isinstance(func, ast.Name) and func.id in direct_imports:
            found.append(f"{where}: {func.id}()")
    return found


def test_nothing_outside_runtime_schedules_behind_the_clocks_back() -> None:
    found: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if RUNTIME in path.parents:
            continue
        found += violations_in(path.read_text(), str(path.relative_to(PACKAGE.parent)))
    assert found == [], "use hamlet.runtime (Clock, with_timeout) instead:\n" + "\n".join(found)


def test_the_scan_catches_each_forbidden_call() -> None:
    bad = """
import asyncio
import asyncio as aio
from asyncio import sleep as nap

async def f(loop, hs, self):
    await asyncio.sleep(1)
    asyncio.create_task(g())
    aio.ensure_future(g())
    await asyncio.wait_for(g(), 1)
    asyncio.get_event_loop()
    loop.call_later(1, g)
    asyncio.get_running_loop().call_soon(g)
    loop.call_at(5, g)
    self._loop.call_later(1, g)
    await nap(1)
"""
    found = violations_in(bad, "bad.py")
    assert len(found) == 11, found


def test_the_scan_allows_the_clock_and_lookalikes() -> None:
    ok = """
import asyncio

async def f(hs, clock, self):
    hs.clock.call_later(1, g)
    clock.call_later(1, g)
    self._clock.call_later(1, g)
    self.clock.looping_call(g, 5)
    await hs.clock.sleep(1)
    asyncio.get_running_loop()
    asyncio.current_task()
    # asyncio.sleep(1) in a comment
    text = "loop.call_soon(x)"
"""
    assert violations_in(ok, "ok.py") == []
