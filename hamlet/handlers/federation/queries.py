"""Asking other servers on a local user's behalf: profiles, room aliases and
public room lists (`/profile`, `/directory/room` and `/publicRooms?server=`
for remote users, aliases and servers).

Errors map as Synapse's do: a server that cannot be reached, or answers
something that is not what the spec says, is 502 M_UNKNOWN; its 404 is our
404 (and its 403 our 403 for profiles and room lists, which a server may
refuse to share); any other error status is 502.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from hamlet.core.canonical_json import JsonDict
from hamlet.core.ids import is_room_id, is_valid_server_name
from hamlet.handlers.common.errors import ForbiddenError, MatrixError, NotFoundError
from hamlet.handlers.common.service import ENTRY_BYTES, ServiceBase
from hamlet.handlers.federation.client import FederationDeniedError
from hamlet.handlers.federation.keyring import KeyFetchTransport
from hamlet.handlers.federation.sender.transport import http_status
from hamlet.runtime.clock import Clock
from hamlet.runtime.lru import LruCache

logger = logging.getLogger(__name__)

FEDERATION_V1: Final = "/_matrix/federation/v1"
PROFILE_FIELDS: Final = ("displayname", "avatar_url")
#: Remote profiles are kept this long (ms), for this many users.
PROFILE_CACHE_MS: Final = 60_000
PROFILES_CACHED: Final = 1000
#: Bounds on what a remote server's answer may make us pass on.
MAX_ALIAS_SERVERS: Final = 100
MAX_PUBLIC_ROOMS: Final = 500
#: Longest profile value passed on (our own limits are 256 and 1000).
MAX_PROFILE_VALUE: Final = 1000


#: What these queries need of the outbound federation client (the tenant's
#: `FederationClient`): the keyring's shape (get_json / post_json). It signs,
#: finds the destination and raises on failure, an exception with an integer
#: `status` (or `code`) being the remote server's error answer.
QueryTransport = KeyFetchTransport


class RemoteServerError(MatrixError):
    """502: the remote server failed us."""

    def __init__(self, message: str) -> None:
        super().__init__(502, "M_UNKNOWN", message)


class FederationQueries(ServiceBase):
    name = "federation_queries"

    def __init__(self, clock: Clock, transport: QueryTransport) -> None:
        self._clock = clock
        self._transport = transport
        self._profiles: LruCache[str, tuple[int, dict[str, str]]] = LruCache(PROFILES_CACHED)

    async def _ask(
        self,
        destination: str,
        path: str,
        *,
        args: Mapping[str, str] | None = None,
        body: JsonDict | None = None,
        failure: str,
        not_found: str,
        passes_403: bool = False,
    ) -> JsonDict:
        """GET (or POST `body`) and the JSON object answered, errors mapped."""
        try:
            if body is None:
                answer = await self._transport.get_json(destination, path, args)
            else:
                answer = await self._transport.post_json(destination, path, body)
        except MatrixError:
            raise
        except Exception as e:
            status = http_status(e)
            logger.info("%s from %s: %s", failure, destination, e)
            if isinstance(e, FederationDeniedError):
                raise ForbiddenError(f"Federation denied with {destination}.") from e
            if status == 404:
                raise NotFoundError(not_found) from e
            if status == 403 and passes_403:
                raise ForbiddenError(f"{failure}: refused by {destination}") from e
            raise RemoteServerError(failure) from e
        if not isinstance(answer, dict):
            raise RemoteServerError(failure)
        return answer

    # --- profiles ---

    async def profile(self, user_id: str, domain: str) -> dict[str, str]:
        """A remote user's profile (displayname, avatar_url), cached briefly."""
        now = self._clock.time_msec()
        cached = self._profiles.get(user_id)
        if cached is not None and now - cached[0] < PROFILE_CACHE_MS:
            return dict(cached[1])
        answer = await self._ask(
            domain,
            f"{FEDERATION_V1}/query/profile",
            args={"user_id": user_id},
            failure="Failed to fetch profile",
            not_found="Profile was not found",
            passes_403=True,
        )
        profile = {
            name: value
            for name in PROFILE_FIELDS
            if isinstance(value := answer.get(name), str) and len(value) <= MAX_PROFILE_VALUE
        }
        self._profiles.set(user_id, (now, profile))
        return dict(profile)

    # --- room aliases ---

    async def room_alias(self, alias: str, domain: str) -> JsonDict:
        """`{room_id, servers}` for a remote alias, as its server answers."""
        answer = await self._ask(
            domain,
            f"{FEDERATION_V1}/query/directory",
            args={"room_alias": alias},
            failure="Failed to fetch alias",
            not_found=f"Room alias {alias} not found",
        )
        room_id = answer.get("room_id")
        servers = answer.get("servers")
        if not isinstance(room_id, str) or not is_room_id(room_id):
            raise RemoteServerError("Failed to fetch alias")
        if not isinstance(servers, list):
            raise RemoteServerError("Failed to fetch alias")
        valid = [s for s in servers if isinstance(s, str) and is_valid_server_name(s)]
        return {"room_id": room_id, "servers": list(dict.fromkeys(valid))[:MAX_ALIAS_SERVERS]}

    # --- public rooms ---

    async def public_rooms(
        self,
        server: str,
        *,
        limit: int | None,
        since: str | None,
        search_term: str | None,
        room_types: list[str | None] | None,
        include_all_networks: bool = False,
        third_party_instance_id: str | None = None,
    ) -> JsonDict:
        """A remote server's public room list; asked with POST when filtered, as Synapse."""
        failure = "Failed to fetch the room list"
        path = f"{FEDERATION_V1}/publicRooms"
        if search_term is not None or room_types is not None:
            body: JsonDict = {"include_all_networks": include_all_networks}
            if limit:
                body["limit"] = limit
            if since is not None:
                body["since"] = since
            search_filter: JsonDict = {}
            if search_term is not None:
                search_filter["generic_search_term"] = search_term
            if room_types is not None:
                search_filter["room_types"] = room_types
            body["filter"] = search_filter
            if third_party_instance_id is not None:
                body["third_party_instance_id"] = third_party_instance_id
            answer = await self._ask(
                server, path, body=body, failure=failure, not_found=failure, passes_403=True
            )
        else:
            args: dict[str, str] = {"include_all_networks": str(include_all_networks).lower()}
            if limit:
                args["limit"] = str(limit)
            if since is not None:
                args["since"] = since
            if third_party_instance_id is not None:
                args["third_party_instance_id"] = third_party_instance_id
            answer = await self._ask(
                server, path, args=args, failure=failure, not_found=failure, passes_403=True
            )
        return _public_rooms(answer, limit)

    def memory_usage(self) -> int:
        return ENTRY_BYTES * len(self._profiles)

    def clear_caches(self) -> None:
        self._profiles.clear()


def _public_rooms(answer: JsonDict, limit: int | None) -> JsonDict:
    chunk = answer.get("chunk")
    if not isinstance(chunk, list):
        raise RemoteServerError("Failed to fetch the room list")
    cap = min(limit, MAX_PUBLIC_ROOMS) if limit else MAX_PUBLIC_ROOMS
    rooms = [
        r
        for r in chunk
        if isinstance(r, dict)
        and isinstance(r.get("room_id"), str)
        and isinstance(r.get("num_joined_members"), int)
    ][:cap]
    out: JsonDict = {"chunk": rooms}
    for key in ("next_batch", "prev_batch"):
        if isinstance(answer.get(key), str):
            out[key] = answer[key]
    estimate = answer.get("total_room_count_estimate")
    if isinstance(estimate, int) and not isinstance(estimate, bool):
        out["total_room_count_estimate"] = estimate
    return out
