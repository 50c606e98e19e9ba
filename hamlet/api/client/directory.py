"""Room aliases (`/directory/room`), room directory visibility and `/publicRooms`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.core.ids import RoomAlias, is_valid_server_name
from hamlet.handlers.common.errors import BadJsonError, InvalidParamError, MissingParamError


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
    alias = req.params["roomAlias"]
    if RoomAlias.is_valid(alias):
        domain = RoomAlias.from_string(alias).domain
        if domain != req.hs.server_name:
            return await req.hs.federation_queries.room_alias(alias, domain)
    return await req.hs.directory.get_alias(alias)


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


@dataclass(frozen=True, slots=True)
class PublicRoomsSearch:
    """The body of `POST /publicRooms` (client and federation alike)."""

    limit: int | None
    since: str | None
    search_term: str | None
    room_types: list[str | None] | None


def public_rooms_search(body: dict[str, Any]) -> PublicRoomsSearch:
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
    return PublicRoomsSearch(limit, since, term, room_types)


def _remote_server(req: ApiRequest) -> str | None:
    """The `server` whose list is asked for, when it is not us."""
    server = req.query.get("server")
    if server is None or server == req.hs.server_name:
        return None
    if not is_valid_server_name(server):
        raise InvalidParamError(f"{server!r} is not a server name")
    return server


async def get_public_rooms(req: ApiRequest) -> dict[str, Any]:
    remote = _remote_server(req)
    anonymous_ok = req.hs.config.allow_public_rooms_without_auth and remote is None
    if req.access_token() is not None or not anonymous_ok:
        # Asking another server on someone's behalf is never anonymous (as Synapse).
        await req.authenticate(allow_guest=True)
    limit = req.query_int("limit")
    since = req.query.get("since")
    if remote is not None:
        return await req.hs.federation_queries.public_rooms(
            remote,
            limit=limit,
            since=since,
            search_term=None,
            room_types=None,
            include_all_networks=req.query_bool("include_all_networks"),
            third_party_instance_id=req.query.get("third_party_instance_id"),
        )
    return await req.hs.directory.public_rooms(
        server=None, limit=limit, since=since, search_term=None, room_types=None
    )


async def post_public_rooms(req: ApiRequest) -> dict[str, Any]:
    await req.authenticate(allow_guest=True)
    body = await req.json_object(allow_empty=True)
    search = public_rooms_search(body)
    remote = _remote_server(req)
    if remote is not None:
        include_all = body.get("include_all_networks", False)
        instance = body.get("third_party_instance_id")
        return await req.hs.federation_queries.public_rooms(
            remote,
            limit=search.limit,
            since=search.since,
            search_term=search.search_term,
            room_types=search.room_types,
            include_all_networks=include_all is True,
            third_party_instance_id=instance if isinstance(instance, str) else None,
        )
    return await req.hs.directory.public_rooms(
        server=None,
        limit=search.limit,
        since=search.since,
        search_term=search.search_term,
        room_types=search.room_types,
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
