"""Room aliases (`/directory/room`), room directory visibility and `/publicRooms`."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.common.errors import BadJsonError, InvalidParamError, MissingParamError
from hamlet.handlers.common.requester import Requester


async def put_alias(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object()
    room_id = body.get("room_id")
    if room_id is None:
        raise MissingParamError("Missing room_id")
    if not isinstance(room_id, str):
        raise BadJsonError("room_id must be a string")
    await req.hs.directory.create_alias(requester, req.params["roomAlias"], room_id)
    return {}


async def get_alias(req: ApiRequest) -> dict[str, Any]:
    return await req.hs.directory.get_alias(req.params["roomAlias"])


async def delete_alias(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    await req.hs.directory.delete_alias(requester, req.params["roomAlias"])
    return {}


async def room_aliases(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    aliases = await req.hs.directory.get_room_aliases(requester.user_id, req.params["roomId"])
    return {"aliases": aliases}


async def get_visibility(req: ApiRequest) -> dict[str, Any]:
    return {"visibility": await req.hs.directory.get_visibility(req.params["roomId"])}


async def put_visibility(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object(allow_empty=True)
    await req.hs.directory.set_visibility(
        requester, req.params["roomId"], body.get("visibility", "public")
    )
    return {}


async def _optional_requester(req: ApiRequest) -> Requester | None:
    if req.access_token() is None and req.hs.config.allow_public_rooms_without_auth:
        return None
    return await req.authenticate(allow_guest=True)


async def get_public_rooms(req: ApiRequest) -> dict[str, Any]:
    await _optional_requester(req)
    return await req.hs.directory.public_rooms(
        server=req.query.get("server"),
        limit=req.query_int("limit"),
        since=req.query.get("since"),
        search_term=None,
        room_types=None,
    )


async def post_public_rooms(req: ApiRequest) -> dict[str, Any]:
    await req.authenticate(allow_guest=True)
    body = await req.json_object(allow_empty=True)
    limit = body.get("limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
        raise InvalidParamError("limit must be an integer")
    since = body.get("since")
    if since is not None and not isinstance(since, str):
        raise InvalidParamError("since must be a string")
    search_filter = body.get("filter") or {}
    if not isinstance(search_filter, dict):
        raise InvalidParamError("filter must be an object")
    term = search_filter.get("generic_search_term")
    if term is not None and not isinstance(term, str):
        raise InvalidParamError("generic_search_term must be a string")
    room_types = search_filter.get("room_types")
    if room_types is not None and (
        not isinstance(room_types, list)
        or not all(t is None or isinstance(t, str) for t in room_types)
    ):
        raise InvalidParamError("room_types must be a list of strings or nulls")
    return await req.hs.directory.public_rooms(
        server=req.query.get("server"),
        limit=limit,
        since=since,
        search_term=term,
        room_types=room_types,
    )


def register(router: Router) -> None:
    router.add_client("PUT", "/directory/room/{roomAlias}", put_alias)
    router.add_client("GET", "/directory/room/{roomAlias}", get_alias)
    router.add_client("DELETE", "/directory/room/{roomAlias}", delete_alias)
    router.add_client("GET", "/rooms/{roomId}/aliases", room_aliases)
    router.add_client("GET", "/directory/list/room/{roomId}", get_visibility)
    router.add_client("PUT", "/directory/list/room/{roomId}", put_visibility)
    router.add_client("GET", "/publicRooms", get_public_rooms)
    router.add_client("POST", "/publicRooms", post_public_rooms)
