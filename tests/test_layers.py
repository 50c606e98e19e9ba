"""Imports point down the layers only (docs/ARCHITECTURE.md), checked by parsing every module.

    cli -> host -> homeserver -> api -> handlers -> storage -> core
                                                  config, runtime below

Imports under `if TYPE_CHECKING:` count like any other, with one exception:
api may name `hamlet.homeserver` there, because every route handler is
typed against the HomeServer that the front door hands it (`ApiRequest.hs`)
while only the homeserver builds the router, never the reverse at runtime.

aiohttp (and its `multidict`/`yarl`) is HTTP, so only api/ and host/ import
it, and the outbound HTTP client `hamlet/runtime/http_client.py` (plain
HTTP, no Matrix), which handlers reach through a Protocol of their own.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import hamlet

PACKAGE = Path(hamlet.__file__).parent

_BELOW_HANDLERS = frozenset({"storage", "core", "config", "runtime"})
# What each layer may import from hamlet (besides the root package's version).
ALLOWED: dict[str, frozenset[str]] = {
    "root": frozenset(),
    "core": frozenset({"core"}),
    "runtime": frozenset({"runtime"}),
    "config": frozenset({"config", "runtime", "core"}),
    "storage": _BELOW_HANDLERS,
    "handlers": _BELOW_HANDLERS | {"handlers"},
    # The API asks handlers; it never calls (or imports) a store.
    "api": frozenset({"api", "handlers", "core", "config", "runtime"}),
    "homeserver": _BELOW_HANDLERS | {"homeserver", "api", "handlers"},
    "host": _BELOW_HANDLERS | {"host", "homeserver", "api", "handlers"},
    "cli": _BELOW_HANDLERS | {"cli", "host", "homeserver", "api", "handlers"},
}
ALLOWED_TYPE_ONLY: dict[str, frozenset[str]] = {"api": frozenset({"homeserver"})}
HTTP_LIBRARIES = frozenset({"aiohttp", "multidict", "yarl"})
HTTP_ALLOWED = ("hamlet.api", "hamlet.host", "hamlet.runtime.http_client")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. hamlet.api.server
    target: str  # what it imports, e.g. hamlet.handlers.common.errors
    line: int
    type_only: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "hamlet":
        return None
    if len(parts) == 1:
        return "root"
    return parts[1] if parts[1] in ALLOWED else f"unknown:{parts[1]}"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_in(source: str, module: str, is_package: bool = False) -> list[Import]:
    found: list[Import] = []
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(module, alias.name, node.lineno, type_only))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append(Import(module, target, node.lineno, type_only))
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(ast.parse(source), False)
    return found


def violation(imp: Import) -> str | None:
    layer = layer_of(imp.module)
    assert layer is not None
    where = f"{imp.module}:{imp.line} imports {imp.target}"
    if layer.startswith("unknown:"):
        return f"{where}: {imp.module} is in no layer; add it to tests/test_layers.py"
    top = imp.target.split(".")[0]
    if top in HTTP_LIBRARIES and not imp.module.startswith(HTTP_ALLOWED):
        return f"{where}: only api/ and host/ speak HTTP"
    target_layer = layer_of(imp.target)
    if target_layer in (None, "root") or target_layer in ALLOWED[layer]:
        return None
    if imp.type_only and target_layer in ALLOWED_TYPE_ONLY.get(layer, frozenset()):
        return None
    kind = "a type-only import" if imp.type_only else "an import"
    return f"{where}: {kind} from {layer} into {target_layer} points the wrong way"


def all_imports() -> list[Import]:
    found: list[Import] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found += imports_in(path.read_text(), module_name(path), path.name == "__init__.py")
    return found


def test_every_import_points_down() -> None:
    imports = all_imports()
    assert len(imports) > 500, "the scan found the package's modules"
    problems = [p for p in map(violation, imports) if p is not None]
    assert problems == []


def test_the_scan_catches_each_kind_of_violation() -> None:
    def problems(source: str, module: str) -> list[str]:
        return [p for p in map(violation, imports_in(source, module)) if p is not None]

    assert problems("from hamlet.storage.database import Database", "hamlet.core.events")
    assert problems("from hamlet.handlers.common import errors", "hamlet.runtime.clock")
    assert problems("from ...api.request import ApiRequest", "hamlet.handlers.accounts.auth")
    assert problems("import hamlet.host.tenant", "hamlet.homeserver")
    assert problems("from hamlet.storage.stores.devices import X", "hamlet.api.client.devices")
    assert problems("import aiohttp", "hamlet.handlers.media.repository")
    assert problems("from multidict import MultiDict", "hamlet.storage.database")
    assert problems("from hamlet.cli import main", "hamlet.host.process")
    # Type-only imports count, except api naming the HomeServer.
    type_only = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from hamlet.{} import X\n"
    assert problems(type_only.format("homeserver"), "hamlet.handlers.sync.handler")
    assert problems(type_only.format("api.request"), "hamlet.handlers.accounts.auth")
    assert not problems(type_only.format("homeserver"), "hamlet.api.request")
    assert problems("from hamlet.homeserver import HomeServer", "hamlet.api.request")
    # A new top-level package must be placed in a layer first.
    assert problems("import os", "hamlet.federation.client")
    # What is allowed stays allowed.
    assert not problems("from hamlet.core.events import X", "hamlet.handlers.rooms.state")
    assert not problems("from . import errors", "hamlet.handlers.common.ratelimit")
    assert not problems("from aiohttp import web", "hamlet.host.control")
    assert not problems("import hamlet", "hamlet.api.client.versions")
