"""A static route table shared by every tenant.

Routes are defined once per process; the tenant is an argument of each
call, so a thousand tenants cost one table, not a thousand.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

if TYPE_CHECKING:
    from hamlet.api.request import ApiRequest

Handler = Callable[["ApiRequest"], Awaitable[Any]]

CLIENT_PREFIXES = ("/_matrix/client/v3", "/_matrix/client/r0")

_PARAM = re.compile(r"\{(\w+)(?::([^}]+))?\}")


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Handler
    #: Counted against the tenant's concurrency cap. Long polls are not:
    #: they wait rather than work.
    capped: bool = True

    @property
    def servlet(self) -> str:
        """The route's name in metrics (Synapse's `servlet` label): its handler's."""
        return str(getattr(self.handler, "__name__", self.pattern))


class Router:
    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler, *, capped: bool = True) -> None:
        """`pattern` is a path with `{name}` (one segment) or `{name:regex}` parts."""

        pieces = _PARAM.split(pattern)
        # split() interleaves literal text with (name, regex) captures.
        regex = ""
        for i in range(0, len(pieces), 3):
            regex += re.escape(pieces[i])
            if i + 1 < len(pieces):
                name, sub = pieces[i + 1], pieces[i + 2]
                regex += f"(?P<{name}>{sub or '[^/]+'})"
        self._routes.append(Route(method, pattern, re.compile(f"^{regex}$"), handler, capped))

    def add_client(self, method: str, path: str, handler: Handler, *, capped: bool = True) -> None:
        """A Client-Server endpoint under both v3 and the legacy r0 prefix."""
        for prefix in CLIENT_PREFIXES:
            self.add(method, prefix + path, handler, capped=capped)

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """Returns (route, params, path_known). path_known without a route means 405."""
        path_known = False
        for route in self._routes:
            m = route.regex.match(path)
            if m is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, {k: unquote(v) for k, v in m.groupdict().items()}, True
            path_known = True
        return None, {}, path_known

    def routes(self) -> list[Route]:
        return list(self._routes)
