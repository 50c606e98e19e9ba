"""A federation transport between the tenants of one harness, for tests.

`HarnessTransport` is what the keyring fetches with: each request goes over
real HTTP through the harness's front door, to the tenant whose server name
is the destination, so every answer is a real homeserver's. Tests can make a
destination unreachable, send it to another tenant (`aliases`), or change
real answers on the way back (`tamper`), and read what was asked.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest

from hamlet.core.canonical_json import JsonDict
from hamlet.handlers.federation import services as federation
from hamlet.homeserver import HomeServer
from tests.support.harness import Harness


class RemoteError(Exception):
    """The destination answered with an error status (or not at all)."""


@dataclass
class HarnessTransport:
    harness: Harness | None = None
    #: Destinations answered by another tenant (name -> tenant's server name).
    aliases: dict[str, str] = field(default_factory=dict)
    #: Destinations that do not answer.
    down: set[str] = field(default_factory=set)
    #: Rewrites a real answer: (destination, path, answer) -> what is returned.
    tamper: Callable[[str, str, Any], Any] | None = None
    #: (method, destination, path) of every request, in order.
    requests: list[tuple[str, str, str]] = field(default_factory=list)

    async def get_json(
        self,
        destination: str,
        path: str,
        args: Mapping[str, str | list[str]] | None = None,
        *,
        timeout_ms: int | None = None,
    ) -> JsonDict:
        query = f"?{urlencode(args, doseq=True)}" if args else ""
        return await self._request("GET", destination, path + query, None)

    async def post_json(self, destination: str, path: str, body: JsonDict) -> JsonDict:
        return await self._request("POST", destination, path, body)

    async def _request(self, method: str, destination: str, path: str, body: Any) -> Any:
        assert self.harness is not None, "HarnessTransport used before its harness started"
        self.requests.append((method, destination, path))
        if destination in self.down:
            raise RemoteError(f"{destination} is down")
        host = self.aliases.get(destination, destination)
        resp = await self.harness.request(method, path, json=body, host=host)
        if resp.status != 200:
            raise RemoteError(f"{destination} answered {resp.status}: {resp.body[:200]!r}")
        answer = resp.json
        if self.tamper is not None:
            answer = self.tamper(destination, path, answer)
        return answer

    def count(self, method: str, destination: str, path_prefix: str = "") -> int:
        return sum(
            1
            for m, d, p in self.requests
            if m == method and d == destination and p.startswith(path_prefix)
        )


@contextlib.contextmanager
def homeservers_fetching_with(transport: HarnessTransport) -> Iterator[None]:
    """HomeServers built meanwhile give their keyring `transport`."""
    with pytest.MonkeyPatch.context() as mp:
        builders = tuple(
            functools.partial(federation.build, transport=transport)
            if builder is federation.build
            else builder
            for builder in HomeServer.builders
        )
        mp.setattr(HomeServer, "builders", builders)
        yield
