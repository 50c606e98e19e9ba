"""Server-side key backup: /room_keys/version[/{version}] and /room_keys/keys[/...]."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router


async def create_version(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object()
    return await req.hs.key_backup.create_version(requester.user_id, body)


async def get_version(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    return await req.hs.key_backup.get_version(requester.user_id, req.params.get("version"))


async def update_version(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object()
    return await req.hs.key_backup.update_version(requester.user_id, req.params["version"], body)


async def delete_version(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    return await req.hs.key_backup.delete_version(requester.user_id, req.params.get("version"))


async def put_keys(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object()
    return await req.hs.key_backup.put_keys(
        requester.user_id,
        req.query.get("version"),
        body,
        req.params.get("roomId"),
        req.params.get("sessionId"),
    )


async def get_keys(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    return await req.hs.key_backup.get_keys(
        requester.user_id,
        req.query.get("version"),
        req.params.get("roomId"),
        req.params.get("sessionId"),
    )


async def delete_keys(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    return await req.hs.key_backup.delete_keys(
        requester.user_id,
        req.query.get("version"),
        req.params.get("roomId"),
        req.params.get("sessionId"),
    )


def register(router: Router) -> None:
    router.add_client("POST", "/room_keys/version", create_version)
    router.add_client("GET", "/room_keys/version", get_version)
    router.add_client("DELETE", "/room_keys/version", delete_version)
    router.add_client("GET", "/room_keys/version/{version}", get_version)
    router.add_client("PUT", "/room_keys/version/{version}", update_version)
    router.add_client("DELETE", "/room_keys/version/{version}", delete_version)
    for path in (
        "/room_keys/keys",
        "/room_keys/keys/{roomId}",
        "/room_keys/keys/{roomId}/{sessionId}",
    ):
        router.add_client("PUT", path, put_keys)
        router.add_client("GET", path, get_keys)
        router.add_client("DELETE", path, delete_keys)
