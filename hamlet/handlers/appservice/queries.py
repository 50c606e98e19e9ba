"""Asking application services: the ping, and whether a user or alias exists.

`GET {url}/_matrix/app/v1/users/{userId}` and `/rooms/{alias}` let a bridge
create a ghost or a portal room on demand, when someone looks up an
unknown user or alias in its namespace. A service that does not answer in
time counts as saying no: a lookup never waits long on a bridge.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote

import orjson

from hamlet.handlers.appservice.http import JsonHttpClient, app_url, hs_headers
from hamlet.handlers.appservice.registry import AppService, AppServices
from hamlet.handlers.common.errors import ForbiddenError, MatrixError
from hamlet.handlers.common.requester import Requester
from hamlet.runtime.clock import Clock
from hamlet.runtime.http_client import HttpClientError, RequestTimedOutError

logger = logging.getLogger(__name__)

PING_TIMEOUT_S = 15.0
QUERY_TIMEOUT_S = 10.0
MAX_PING_TXN_ID_LENGTH = 255
#: Queries in flight per homeserver: any user can make lookups, and each one
#: for an unknown namespaced name costs the bridge a request; beyond this a
#: lookup is answered from what the homeserver knows.
MAX_CONCURRENT_QUERIES = 20

T = TypeVar("T")


class AppServiceQueries:
    def __init__(self, clock: Clock, services: AppServices, http: JsonHttpClient) -> None:
        self._clock = clock
        self._services = services
        self._http = http
        self._in_flight = 0

    async def ping(
        self, requester: Requester, as_id: str, transaction_id: str | None
    ) -> dict[str, Any]:
        """`POST /_matrix/client/v1/appservice/{appserviceId}/ping`, errors as the spec."""
        service = self._services.by_id(as_id)
        if service is None or requester.app_service_id != as_id:
            raise ForbiddenError("Provided as_token does not match appservice ID")
        if service.url is None:
            raise MatrixError(400, "M_URL_NOT_SET", "Application service URL is not set")
        body: dict[str, Any] = {}
        if transaction_id is not None:
            body["transaction_id"] = transaction_id
        started = self._clock.monotonic()
        try:
            resp = await self._http.request_json(
                "POST",
                app_url(service, "/ping"),
                body=body,
                headers=hs_headers(service),
                timeout_s=PING_TIMEOUT_S,
            )
        except RequestTimedOutError:
            raise MatrixError(
                504, "M_CONNECTION_TIMEOUT", "Connection to application service timed out"
            ) from None
        except HttpClientError as e:
            raise MatrixError(
                502, "M_CONNECTION_FAILED", f"Connection to application service failed: {e}"
            ) from None
        if not 200 <= resp.status < 300:
            text = orjson.dumps(resp.json).decode() if resp.json is not None else ""
            error = MatrixError(502, "M_BAD_STATUS", f"Ping returned status {resp.status}")
            error.extra.update(status=resp.status, body=text)
            raise error
        return {"duration_ms": int((self._clock.monotonic() - started) * 1000)}

    async def ask_user(self, service: AppService, user_id: str) -> bool:
        return await self._ask(service, f"/users/{quote(user_id, safe='')}")

    async def _ask(self, service: AppService, path: str) -> bool:
        if self._in_flight >= MAX_CONCURRENT_QUERIES:
            logger.info("Too many application service queries in flight; not asking %s", service.id)
            return False
        self._in_flight += 1
        try:
            return await self._get(service, path)
        finally:
            self._in_flight -= 1

    async def _get(self, service: AppService, path: str) -> bool:
        try:
            resp = await self._http.request_json(
                "GET",
                app_url(service, path),
                headers=hs_headers(service),
                timeout_s=QUERY_TIMEOUT_S,
            )
        except HttpClientError as e:
            logger.info("Query to application service %s failed: %s", service.id, e)
            return False
        return 200 <= resp.status < 300

    async def query_user(self, user_id: str) -> bool:
        """Did a service whose namespace holds `user_id` say it exists (and so created it)?"""
        for service in self._services:
            if service.url is not None and service.owns_user(user_id):
                if await self.ask_user(service, user_id):
                    return True
        return False

    async def query_alias(self, alias: str) -> bool:
        """Did a service whose namespace holds `alias` say it exists (and so created it)?"""
        for service in self._services.interested_in_alias(alias):
            if service.url is not None and await self._ask(
                service, f"/rooms/{quote(alias, safe='')}"
            ):
                return True
        return False

    async def find_alias(self, alias: str, get: Callable[[str], Awaitable[T | None]]) -> T | None:
        """`get(alias)`; if there is none, ask the services and look again."""
        found = await get(alias)
        if found is None and await self.query_alias(alias):
            found = await get(alias)
        return found

    async def user_exists(self, user_id: str, exists: Callable[[str], Awaitable[bool]]) -> bool:
        """`exists(user_id)`; if not, ask the services and look again."""
        if await exists(user_id):
            return True
        return await self.query_user(user_id) and await exists(user_id)
