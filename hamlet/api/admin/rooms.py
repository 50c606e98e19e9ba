"""The rooms side of the admin API (/_synapse/admin/v1|v2/rooms..., /join)."""

from __future__ import annotations

import logging
from typing import Any

from hamlet.api.admin._params import direction, offset_and_limit, optional_bool
from hamlet.api.admin.auth import require_admin
from hamlet.api.client.spaces import HierarchyQuery
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.common.errors import BadJsonError, MissingParamError
from hamlet.handlers.history.pagination import parse_event_filter_param, parse_limit

logger = logging.getLogger(__name__)

V1 = "/_synapse/admin/v1"
V2 = "/_synapse/admin/v2"


async def list_rooms(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    start, limit = offset_and_limit(req, 100)
    search_term = req.query.get("search_term")
    return await req.hs.admin_rooms.list_rooms(
        start=start,
        limit=limit,
        order_by=req.query.get("order_by", "name"),
        backwards=direction(req, "f") == "b",
        search_term=search_term,
        public_rooms=optional_bool(req, "public_rooms"),
        empty_rooms=optional_bool(req, "empty_rooms"),
    )


async def room_details(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    return await req.hs.admin_rooms.room_details(req.params["roomId"])


async def room_members(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    return await req.hs.admin_rooms.members(req.params["roomId"])


async def room_state(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    return await req.hs.admin_rooms.room_state(req.params["roomId"], req.query.get("type"))


async def room_messages(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    return await req.hs.admin_rooms.messages(
        req.params["roomId"],
        from_token=req.query.get("from"),
        to_token=req.query.get("to"),
        backwards=direction(req, "f") == "b",
        limit=parse_limit(req.query_int("limit"), 10),
        event_filter=parse_event_filter_param(req.query.get("filter")),
    )


async def event_context(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    return await req.hs.admin_rooms.context(
        req.params["roomId"],
        req.params["eventId"],
        limit=parse_limit(req.query_int("limit"), 10),
        event_filter=parse_event_filter_param(req.query.get("filter")),
    )


async def room_hierarchy(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    query = HierarchyQuery.parse(req)
    return await req.hs.spaces.get_admin_hierarchy(
        req.params["roomId"],
        suggested_only=query.suggested_only,
        max_depth=query.max_depth,
        limit=query.limit,
        from_token=query.from_token,
    )


async def delete_room_v2(req: ApiRequest) -> dict[str, Any]:
    requester = await require_admin(req)
    body = await req.json_object()
    return await req.hs.admin_rooms.start_delete(requester.user_id, req.params["roomId"], body)


async def delete_room_v1(req: ApiRequest) -> dict[str, Any]:
    requester = await require_admin(req)
    body = await req.json_object()
    status = await req.hs.admin_rooms.delete_now(requester.user_id, req.params["roomId"], body)
    return status.shutdown_room.to_json()


async def delete_status_for_room(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    return req.hs.admin_rooms.delete_statuses_for_room(req.params["roomId"])


async def delete_status(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    return req.hs.admin_rooms.delete_status(req.params["deleteId"])


async def get_block(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    return await req.hs.admin_rooms.block_status(req.params["roomId"])


async def put_block(req: ApiRequest) -> dict[str, Any]:
    requester = await require_admin(req)
    body = await req.json_object()
    if "block" not in body:
        raise MissingParamError("Missing params: ['block']")
    block = body["block"]
    if not isinstance(block, bool):
        raise BadJsonError("Param 'block' must be a boolean.")
    return await req.hs.admin_rooms.set_blocked(requester.user_id, req.params["roomId"], block)


async def join_room(req: ApiRequest) -> dict[str, Any]:
    requester = await require_admin(req)
    body = await req.json_object()
    if "user_id" not in body:
        raise MissingParamError("Missing params: ['user_id']")
    return await req.hs.admin_rooms.force_join(
        requester.user_id, req.params["roomIdOrAlias"], body["user_id"]
    )


async def make_room_admin(req: ApiRequest) -> dict[str, Any]:
    requester = await require_admin(req)
    body = await req.json_object(allow_empty=True)
    return await req.hs.admin_rooms.make_room_admin(
        requester.user_id, req.params["roomIdOrAlias"], body.get("user_id")
    )


def register(router: Router) -> None:
    router.add("GET", f"{V1}/rooms", list_rooms)
    router.add("GET", f"{V1}/rooms/{{roomId}}", room_details)
    router.add("DELETE", f"{V1}/rooms/{{roomId}}", delete_room_v1)
    router.add("GET", f"{V1}/rooms/{{roomId}}/members", room_members)
    router.add("GET", f"{V1}/rooms/{{roomId}}/state", room_state)
    router.add("GET", f"{V1}/rooms/{{roomId}}/messages", room_messages)
    router.add("GET", f"{V1}/rooms/{{roomId}}/context/{{eventId}}", event_context)
    router.add("GET", f"{V1}/rooms/{{roomId}}/hierarchy", room_hierarchy)
    router.add("GET", f"{V1}/rooms/{{roomId}}/block", get_block)
    router.add("PUT", f"{V1}/rooms/{{roomId}}/block", put_block)
    router.add("POST", f"{V1}/rooms/{{roomIdOrAlias}}/make_room_admin", make_room_admin)
    router.add("POST", f"{V1}/join/{{roomIdOrAlias}}", join_room)
    router.add("GET", f"{V2}/rooms/delete_status/{{deleteId}}", delete_status)
    router.add("DELETE", f"{V2}/rooms/{{roomId}}", delete_room_v2)
    router.add("GET", f"{V2}/rooms/{{roomId}}/delete_status", delete_status_for_room)
