"""A bridge's side of the Application Service API, as a real HTTP server on loopback.

It records what the homeserver sends and can be told to fail, hang or
recover, so the tests watch retries, isolation and catch-up over real
sockets. `wait_for_txns(n)` waits on the recorded condition itself (with a
real-time guard), never a fixed sleep.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

GUARD_S = 20.0


class FakeBridge:
    def __init__(self, hs_token: str) -> None:
        self.hs_token = hs_token
        self.txns: dict[str, dict[str, Any]] = {}
        #: Every PUT received, in order (retries included).
        self.puts: list[str] = []
        self.pings: list[dict[str, Any]] = []
        self.user_queries: list[str] = []
        self.alias_queries: list[str] = []
        #: "ok", "fail" (500) or "hang" (never answers).
        self.mode = "ok"
        self.known_users: set[str] = set()
        self.on_user_query: Any = None
        self.on_alias_query: Any = None
        self._changed = asyncio.Condition()
        self._hung: list[asyncio.Future[None]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> FakeBridge:
        app = web.Application()
        app.router.add_put("/_matrix/app/v1/transactions/{txn}", self._txn)
        app.router.add_post("/_matrix/app/v1/ping", self._ping)
        app.router.add_get("/_matrix/app/v1/users/{user}", self._user)
        app.router.add_get("/_matrix/app/v1/rooms/{alias}", self._alias)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()

    def release(self) -> None:
        """Let hung requests go (they answer 500)."""
        for fut in self._hung:
            if not fut.done():
                fut.set_result(None)
        self._hung.clear()

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for txn in self.txns.values() for e in txn.get("events", [])]

    @property
    def ephemeral(self) -> list[dict[str, Any]]:
        return [e for txn in self.txns.values() for e in txn.get("ephemeral", [])]

    async def wait_for(self, predicate: Any, what: str = "condition") -> None:
        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        try:
            await asyncio.wait_for(wait(), GUARD_S)
        except TimeoutError:
            raise AssertionError(f"bridge never saw {what}: {self.txns}") from None

    async def wait_for_event(self, check: Any) -> dict[str, Any]:
        await self.wait_for(lambda: any(check(e) for e in self.events), "the event")
        return next(e for e in self.events if check(e))

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.hs_token}"

    async def _misbehave(self) -> web.Response | None:
        if self.mode == "fail":
            return web.json_response({"errcode": "M_UNKNOWN"}, status=500)
        if self.mode == "hang":
            fut = asyncio.get_running_loop().create_future()
            self._hung.append(fut)
            await self._notify()
            await fut
            return web.json_response({"errcode": "M_UNKNOWN"}, status=500)
        return None

    async def _txn(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"errcode": "M_FORBIDDEN"}, status=403)
        txn_id = request.match_info["txn"]
        self.puts.append(txn_id)
        await self._notify()
        bad = await self._misbehave()
        if bad is not None:
            return bad
        self.txns.setdefault(txn_id, await request.json())
        await self._notify()
        return web.json_response({})

    async def _ping(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"errcode": "M_FORBIDDEN"}, status=403)
        bad = await self._misbehave()
        if bad is not None:
            return bad
        self.pings.append(await request.json())
        return web.json_response({})

    async def _user(self, request: web.Request) -> web.Response:
        user_id = request.match_info["user"]
        self.user_queries.append(user_id)
        await self._notify()
        if self.on_user_query is not None and await self.on_user_query(user_id):
            return web.json_response({})
        return web.json_response({"errcode": "M_NOT_FOUND"}, status=404)

    async def _alias(self, request: web.Request) -> web.Response:
        alias = request.match_info["alias"]
        self.alias_queries.append(alias)
        await self._notify()
        if self.on_alias_query is not None and await self.on_alias_query(alias):
            return web.json_response({})
        return web.json_response({"errcode": "M_NOT_FOUND"}, status=404)
