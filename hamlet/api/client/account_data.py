"""Account data (global and per room) and room tags."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.user_streams.account_data import (
    PUSH_RULES,
    check_can_set,
    check_own,
    check_room_id,
)


async def put_global(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    user_id, data_type = req.params["userId"], req.params["type"]
    check_own(requester.user_id, user_id)
    check_can_set(data_type)
    body = await req.json_object()
    await req.hs.account_data.set_global(user_id, data_type, body)
    return {}


async def get_global(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    user_id = req.params["userId"]
    check_own(requester.user_id, user_id, "get")
    if req.params["type"] == PUSH_RULES:
        # Served even before the user changed (and so stored) any rule.
        return await req.hs.push_rules.get_rules(user_id)
    return await req.hs.account_data.get_global(user_id, req.params["type"])


async def put_room(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    user_id, room_id, data_type = req.params["userId"], req.params["roomId"], req.params["type"]
    check_own(requester.user_id, user_id)
    check_room_id(room_id)
    check_can_set(data_type)
    body = await req.json_object()
    await req.hs.account_data.set_room(user_id, room_id, data_type, body)
    return {}


async def get_room(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    user_id = req.params["userId"]
    check_own(requester.user_id, user_id, "get")
    return await req.hs.account_data.get_room(user_id, req.params["roomId"], req.params["type"])


async def get_tags(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    user_id, room_id = req.params["userId"], req.params["roomId"]
    check_own(requester.user_id, user_id, "get tags of")
    check_room_id(room_id)
    return {"tags": await req.hs.account_data.get_tags(user_id, room_id)}


async def put_tag(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    user_id, room_id = req.params["userId"], req.params["roomId"]
    check_own(requester.user_id, user_id, "add tags for")
    body = await req.json_object()
    await req.hs.account_data.add_tag(user_id, room_id, req.params["tag"], body)
    return {}


async def delete_tag(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    user_id, room_id = req.params["userId"], req.params["roomId"]
    check_own(requester.user_id, user_id, "remove tags for")
    await req.hs.account_data.remove_tag(user_id, room_id, req.params["tag"])
    return {}


def register(router: Router) -> None:
    router.add_client("PUT", "/user/{userId}/account_data/{type}", put_global)
    router.add_client("GET", "/user/{userId}/account_data/{type}", get_global)
    router.add_client("PUT", "/user/{userId}/rooms/{roomId}/account_data/{type}", put_room)
    router.add_client("GET", "/user/{userId}/rooms/{roomId}/account_data/{type}", get_room)
    router.add_client("GET", "/user/{userId}/rooms/{roomId}/tags", get_tags)
    router.add_client("PUT", "/user/{userId}/rooms/{roomId}/tags/{tag}", put_tag)
    router.add_client("DELETE", "/user/{userId}/rooms/{roomId}/tags/{tag}", delete_tag)
