"""Finds code that schedules work or waits on time behind the Clock's back.

Runtime rule 2: outside hamlet/runtime/, timers, tasks, threads and
timeouts go through the homeserver's Clock (and `with_timeout`), which runs
them in a fresh logging context and cancels them on shutdown. A grep cannot
enforce that: the same call hides behind an alias (`EF =
asyncio.ensure_future`, `from asyncio import create_task as ct`, `import
asyncio as aio`), a submodule (`asyncio.tasks.create_task`), or a variable
holding the loop (`loop = asyncio.get_running_loop()`, even one named
`clock`). This pass resolves names instead: each module-level or local
name, `self.x` attribute and annotated parameter is bound to what it
refers to (a module, a forbidden function, the event loop, a TaskGroup),
following imports and assignments, and every call is judged by what its
callee resolves to. Assignments are gathered per module without regard to
order or scope, which can only make the check stricter.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

# What a name can resolve to: a dotted path in a module (`asyncio.sleep`),
# or one of these markers for values of interest.
LOOP = "<event loop>"
TASK_GROUP = "<TaskGroup>"

MODULES = {"asyncio", "threading", "concurrent", "concurrent.futures"}

# Calls that are violations whatever their arguments.
FORBIDDEN_CALLS = {
    "asyncio.sleep": "asyncio.sleep()",
    "asyncio.create_task": "asyncio.create_task()",
    "asyncio.ensure_future": "asyncio.ensure_future()",
    "asyncio.wait_for": "asyncio.wait_for()",
    "asyncio.timeout": "asyncio.timeout()",
    "asyncio.timeout_at": "asyncio.timeout_at()",
    "asyncio.Task": "asyncio.Task()",
    "asyncio.run_coroutine_threadsafe": "asyncio.run_coroutine_threadsafe()",
    "asyncio.get_event_loop": "asyncio.get_event_loop()",
    "asyncio.to_thread": "asyncio.to_thread()",
    "threading.Timer": "threading.Timer()",
    "threading.Thread": "threading.Thread()",
    "concurrent.futures.ThreadPoolExecutor": "a ThreadPoolExecutor",
    "concurrent.futures.ProcessPoolExecutor": "a ProcessPoolExecutor",
}
# asyncio re-exports these from submodules: asyncio.tasks.create_task is asyncio.create_task.
ASYNCIO_SUBMODULES = {"tasks", "events", "timeouts", "futures", "base_events", "taskgroups"}
# Calls whose result is the event loop (or a TaskGroup).
LOOP_FACTORIES = {
    "asyncio.get_running_loop",
    "asyncio.get_event_loop",
    "asyncio.new_event_loop",
}
LOOP_TYPES = {
    "asyncio.AbstractEventLoop",
    "asyncio.BaseEventLoop",
    "asyncio.base_events.BaseEventLoop",
}
LOOP_METHODS = {
    "call_soon",
    "call_soon_threadsafe",
    "call_later",
    "call_at",
    "create_task",
    "run_in_executor",
}
# Method names that schedule on whatever they are called on, unless it is a clock.
SCHEDULING_METHODS = {
    "call_soon",
    "call_soon_threadsafe",
    "call_at",
    "run_in_executor",
    "create_task",
}


def _canonical(path: str) -> str:
    """`asyncio.tasks.create_task` -> `asyncio.create_task`."""
    parts = path.split(".")
    if len(parts) == 3 and parts[0] == "asyncio" and parts[1] in ASYNCIO_SUBMODULES:
        return f"asyncio.{parts[2]}"
    return path


@dataclass
class _Scope:
    """Names bound anywhere in one module (flow-insensitive)."""

    names: dict[str, str] = field(default_factory=dict)

    def bind(self, name: str, target: str | None) -> None:
        if target is not None:
            self.names[name] = target


def _dotted(node: ast.expr) -> str | None:
    """`self._loop` -> 'self._loop'; anything not a plain dotted name -> None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base is not None else None
    return None


class _Resolver:
    def __init__(self, tree: ast.Module) -> None:
        self.scope = _Scope()
        self.tree = tree
        self._collect_imports()
        # Assignments can chain (`a = asyncio; b = a.sleep`): bind to a fixed point.
        for _ in range(4):
            before = dict(self.scope.names)
            self._collect_assignments()
            if self.scope.names == before:
                break

    def _collect_imports(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    top = alias.name.split(".")[0]
                    if alias.asname:
                        self.scope.bind(alias.asname, alias.name)
                    else:
                        self.scope.bind(top, top)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    self.scope.bind(
                        alias.asname or alias.name, _canonical(f"{node.module}.{alias.name}")
                    )

    def _collect_assignments(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assign):
                value = self.resolve(node.value)
                for target in node.targets:
                    self._bind_target(target, value)
            elif isinstance(node, ast.AnnAssign):
                value = self.resolve(node.value) if node.value is not None else None
                self._bind_target(node.target, value or self._annotation(node.annotation))
            elif isinstance(node, ast.NamedExpr):
                self._bind_target(node.target, self.resolve(node.value))
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                self._bind_target(node.optional_vars, self.resolve(node.context_expr))
            elif isinstance(node, ast.arg) and node.annotation is not None:
                self.scope.bind(node.arg, self._annotation(node.annotation))

    def _bind_target(self, target: ast.expr, value: str | None) -> None:
        name = _dotted(target)
        if name is not None:
            self.scope.bind(name, value)

    def _annotation(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                node = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                return None
        if isinstance(node, ast.BinOp):  # `AbstractEventLoop | None`
            return self._annotation(node.left) or self._annotation(node.right)
        path = self.resolve(node)
        if path is None:
            return None
        if _canonical(path) in LOOP_TYPES:
            return LOOP
        if _canonical(path) == "asyncio.TaskGroup":
            return TASK_GROUP
        return None

    def resolve(self, node: ast.expr) -> str | None:
        """What an expression refers to, if it is something this check knows."""
        if isinstance(node, ast.Name):
            return self.scope.names.get(node.id)
        if isinstance(node, ast.Attribute):
            whole = _dotted(node)
            if whole is not None and whole in self.scope.names:
                return self.scope.names[whole]
            base = self.resolve(node.value)
            if base is None:
                return None
            if base in (LOOP, TASK_GROUP):
                return f"{base}.{node.attr}"
            return _canonical(f"{base}.{node.attr}")
        if isinstance(node, ast.Call):
            callee = self.resolve(node.func)
            if callee is None:
                return None
            if callee in LOOP_FACTORIES:
                return LOOP
            if callee == "asyncio.TaskGroup":
                return TASK_GROUP
            return None
        return None


def _is_known_module(path: str) -> bool:
    return path in MODULES or any(path.startswith(m + ".") for m in MODULES)


def violations_in(source: str, filename: str) -> list[str]:
    tree = ast.parse(source, filename)
    resolver = _Resolver(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        where = f"{filename}:{node.lineno}"
        problem = _judge(resolver, node)
        if problem is not None:
            found.append(f"{where}: {problem}")
    return found


def _judge(resolver: _Resolver, call: ast.Call) -> str | None:
    callee = resolver.resolve(call.func)
    if callee is not None:
        if callee in FORBIDDEN_CALLS:
            return FORBIDDEN_CALLS[callee]
        if callee == "asyncio.wait" and (
            any(k.arg == "timeout" for k in call.keywords) or len(call.args) >= 2
        ):
            return "asyncio.wait(timeout=...)"
        if callee.startswith(LOOP + "."):
            method = callee[len(LOOP) + 1 :]
            if method in LOOP_METHODS:
                return f"loop.{method}() (use the Clock)"
            return None
        if callee == f"{TASK_GROUP}.create_task":
            return "TaskGroup.create_task() (use the Clock)"
        if _is_known_module(callee):
            return None
    func = call.func
    if not isinstance(func, ast.Attribute):
        return None
    # Receivers this pass cannot resolve (a parameter, an attribute of
    # something else): judged by name, as only the Clock may offer these.
    receiver = _dotted(func.value) or ""
    last = receiver.rsplit(".", 1)[-1].lower()
    if func.attr in SCHEDULING_METHODS and not last.endswith("clock"):
        return f"{receiver or '...'}.{func.attr}() (use the Clock)"
    if func.attr == "call_later" and not last.endswith("clock"):
        return f"{receiver or '...'}.call_later() (use the Clock)"
    return None
