"""A federation transport between the tenants of one harness, for tests.

`HarnessTransport` is what the keyring fetches with: each request goes over
real HTTP through the harness's front door, to the tenant whose server name
is the destination, so every answer is a real homeserver's. Tests can make a
destination unreachable, send it to another tenant (`aliases`), or change
real answers on the way back (`tamper`), and read what was asked.

Each homeserver gets its own view (`signed_by`): its requests carry an
X-Matrix header signed with its key, so the destination authenticates them
exactly as it would another server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from yarl import URL

from hamlet.core.canonical_json import JsonDict
from hamlet.core.crypto import SigningKey
from hamlet.core.xmatrix import sign_request
from hamlet.handlers.common.service import BuildContext
from hamlet.handlers.container import Services
from hamlet.handlers.federation import services as federation
from hamlet.handlers.federation.sender.transport import TransactionTransport
from hamlet.homeserver import HomeServer
from hamlet.runtime.timeout import with_timeout
from tests.support.harness import Harness


def wire_path(path: str) -> str:
    """`path` as the harness's client sends it (yarl re-quotes the query):
    what a signature over the request must cover."""
    return URL(path).raw_path_qs


class RemoteError(Exception):
    """The destination answered with an error `status` (None: not at all)."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        errcode: str | None = None,
        error: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        # As the federation client's RemoteMatrixError carries them.
        self.errcode = errcode
        self.error = error


class _JsonRequests:
    """get_json / post_json / put_json, as the federation client offers them."""

    async def get_json(
        self,
        destination: str,
        path: str,
        args: Mapping[str, str | list[str]] | None = None,
        *,
        timeout_ms: int | None = None,
    ) -> JsonDict:
        query = f"?{urlencode(args, doseq=True)}" if args else ""
        return await self._send("GET", destination, path + query, None, timeout_ms)

    async def post_json(
        self, destination: str, path: str, body: JsonDict, *, timeout_ms: int | None = None
    ) -> JsonDict:
        return await self._send("POST", destination, path, body, timeout_ms)

    async def put_json(
        self, destination: str, path: str, body: JsonDict, *, timeout_ms: int | None = None
    ) -> JsonDict:
        return await self._send("PUT", destination, path, body, timeout_ms)

    async def _send(
        self, method: str, destination: str, path: str, body: Any, timeout_ms: int | None
    ) -> Any:
        raise NotImplementedError


@dataclass
class HarnessTransport(_JsonRequests):
    harness: Harness | None = None
    #: Destinations answered by another tenant (name -> tenant's server name).
    aliases: dict[str, str] = field(default_factory=dict)
    #: Destinations that do not answer.
    down: set[str] = field(default_factory=set)
    #: (destination, path) -> whether that request hangs: until the sender's
    #: timeout (on its homeserver's clock), or for ever without one.
    hang: Callable[[str, str], bool] | None = None
    #: Rewrites a real answer: (destination, path, answer) -> what is returned.
    tamper: Callable[[str, str, Any], Any] | None = None
    #: (method, destination, path) of every request, in order.
    requests: list[tuple[str, str, str]] = field(default_factory=list)

    async def _send(
        self, method: str, destination: str, path: str, body: Any, timeout_ms: int | None
    ) -> Any:
        """Unsigned, as a server fetching keys may send."""
        return await self._request(method, destination, path, body)

    def signed_by(self, origin: str, key: SigningKey) -> SignedTransport:
        """The view of this transport a homeserver named `origin` sends through."""
        return SignedTransport(self, origin, key)

    async def _request(
        self,
        method: str,
        destination: str,
        path: str,
        body: Any,
        origin: tuple[str, SigningKey] | None = None,
        timeout_ms: int | None = None,
    ) -> Any:
        assert self.harness is not None, "HarnessTransport used before its harness started"
        self.requests.append((method, destination, path))
        if destination in self.down:
            raise RemoteError(f"{destination} is down")
        if self.hang is not None and self.hang(destination, path):
            never = asyncio.Event().wait()
            if timeout_ms is None or origin is None:
                await never
            else:
                clock = self.harness.servers[origin[0]].clock
                try:
                    await with_timeout(never, timeout_ms / 1000, clock)
                except TimeoutError:
                    raise RemoteError(f"{destination} timed out") from None
        host = self.aliases.get(destination, destination)
        headers = {}
        if origin is not None:
            headers["Authorization"] = sign_request(
                method=method,
                uri=wire_path(path),
                origin=origin[0],
                destination=destination,
                content=body,
                signing_key=origin[1],
            )
        resp = await self.harness.request(method, path, json=body, host=host, headers=headers)
        if resp.status != 200:
            try:
                body = resp.json
            except ValueError:
                body = None
            if not isinstance(body, dict):
                body = {}
            raise RemoteError(
                f"{destination} answered {resp.status}: {resp.body[:200]!r}",
                resp.status,
                body.get("errcode"),
                body.get("error"),
            )
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


@dataclass
class SignedTransport(_JsonRequests):
    """One homeserver's way out through a `HarnessTransport`: signed as it."""

    network: HarnessTransport
    origin: str
    key: SigningKey

    async def _send(
        self, method: str, destination: str, path: str, body: Any, timeout_ms: int | None
    ) -> Any:
        return await self.network._request(
            method, destination, path, body, (self.origin, self.key), timeout_ms
        )


@dataclass
class Gate:
    """A sender's way out that holds its transactions while closed: the
    destination does not hear of something yet (open when made)."""

    inner: TransactionTransport
    open: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.open.set()

    async def put_json(
        self, destination: str, path: str, body: JsonDict, *, timeout_ms: int | None = None
    ) -> JsonDict:
        await self.open.wait()
        return await self.inner.put_json(destination, path, body, timeout_ms=timeout_ms)


def _build_federation(transport: HarnessTransport, ctx: BuildContext, s: Services) -> None:
    federation.build(ctx, s, transport=transport.signed_by(ctx.server_name, ctx.signing_key))


@contextlib.contextmanager
def homeservers_fetching_with(transport: HarnessTransport) -> Iterator[None]:
    """HomeServers built meanwhile fetch keys and ask queries through
    `transport`, each signing as itself."""
    with pytest.MonkeyPatch.context() as mp:
        builders = tuple(
            functools.partial(_build_federation, transport)
            if builder is federation.build
            else builder
            for builder in HomeServer.builders
        )
        mp.setattr(HomeServer, "builders", builders)
        yield
