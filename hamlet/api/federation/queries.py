"""What another server may ask about us: `/query/profile`, `/query/directory`
and our public room list (`/publicRooms`, when
`allow_public_rooms_over_federation` is on; 403 otherwise, as Synapse)."""

from __future__ import annotations

from typing import Any

from hamlet.api.client.directory import public_rooms_search
from hamlet.api.federation.signed import signed
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.common.errors import ForbiddenError, MissingParamError

FEDERATION_V1 = "/_matrix/federation/v1"


def _required(req: ApiRequest, name: str) -> str:
    value = req.query.get(name)
    if value is None:
        raise MissingParamError(f"Missing string query parameter {name!r}")
    return value


async def query_profile(req: ApiRequest, origin: str) -> dict[str, Any]:
    return await req.hs.profile.federation_profile(
        _required(req, "user_id"), req.query.get("field")
    )


async def query_directory(req: ApiRequest, origin: str) -> dict[str, Any]:
    return await req.hs.directory.federation_alias(_required(req, "room_alias"))


def _check_allowed(req: ApiRequest, origin: str) -> None:
    if not req.hs.config.allow_public_rooms_over_federation:
        raise ForbiddenError(f"Federation denied with {origin}.")


async def get_public_rooms(req: ApiRequest, origin: str) -> dict[str, Any]:
    _check_allowed(req, origin)
    limit = req.query_int("limit")
    return await req.hs.directory.public_rooms(
        server=None,
        # As Synapse: 0 means no limit.
        limit=limit or None,
        since=req.query.get("since"),
        search_term=None,
        room_types=None,
    )


async def post_public_rooms(req: ApiRequest, origin: str) -> dict[str, Any]:
    _check_allowed(req, origin)
    search = public_rooms_search(await req.json_object(allow_empty=True))
    return await req.hs.directory.public_rooms(
        server=None,
        limit=search.limit or None,
        since=search.since,
        search_term=search.search_term,
        room_types=search.room_types,
    )


def register(router: Router) -> None:
    router.add("GET", f"{FEDERATION_V1}/query/profile", signed(query_profile))
    router.add("GET", f"{FEDERATION_V1}/query/directory", signed(query_directory))
    router.add("GET", f"{FEDERATION_V1}/publicRooms", signed(get_public_rooms))
    router.add("POST", f"{FEDERATION_V1}/publicRooms", signed(post_public_rooms))
