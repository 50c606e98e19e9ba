"""A user's devices, for admins: /_synapse/admin/v2/users/{userId}/devices..."""

from __future__ import annotations

from typing import Any

from hamlet.api.admin.auth import require_admin
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.common.errors import InvalidParamError, MissingParamError

BASE = "/_synapse/admin/v2/users/{userId}"


async def _user_id(req: ApiRequest) -> str:
    await require_admin(req)
    user = await req.hs.admin_users.get_user(req.params["userId"])
    return user.name


async def list_devices(req: ApiRequest) -> dict[str, Any]:
    user_id = await _user_id(req)
    return await req.hs.admin_users.list_devices(user_id)


async def create_device(req: ApiRequest) -> dict[str, Any]:
    user_id = await _user_id(req)
    body = await req.json_object()
    device_id = body.get("device_id")
    if device_id is None:
        raise MissingParamError("Missing params: device_id")
    if not isinstance(device_id, str) or not device_id or len(device_id) > 255:
        raise InvalidParamError("'device_id' must be a non-empty string")
    await req.hs.admin_users.create_device(user_id, device_id)
    return {}


async def get_device(req: ApiRequest) -> dict[str, Any]:
    user_id = await _user_id(req)
    return await req.hs.admin_users.get_device(user_id, req.params["deviceId"])


async def update_device(req: ApiRequest) -> dict[str, Any]:
    user_id = await _user_id(req)
    body = await req.json_object(allow_empty=True)
    await req.hs.admin_users.update_device(user_id, req.params["deviceId"], body)
    return {}


async def delete_device(req: ApiRequest) -> dict[str, Any]:
    user_id = await _user_id(req)
    await req.hs.admin_users.delete_devices(user_id, [req.params["deviceId"]])
    return {}


async def delete_devices(req: ApiRequest) -> dict[str, Any]:
    user_id = await _user_id(req)
    body = await req.json_object()
    devices = body.get("devices")
    if devices is None:
        raise MissingParamError("Missing params: devices")
    if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
        raise InvalidParamError("'devices' must be a list of device IDs")
    await req.hs.admin_users.delete_devices(user_id, devices)
    return {}


def register(router: Router) -> None:
    router.add("GET", f"{BASE}/devices", list_devices)
    router.add("POST", f"{BASE}/devices", create_device)
    router.add("GET", f"{BASE}/devices/{{deviceId}}", get_device)
    router.add("PUT", f"{BASE}/devices/{{deviceId}}", update_device)
    router.add("DELETE", f"{BASE}/devices/{{deviceId}}", delete_device)
    router.add("POST", f"{BASE}/delete_devices", delete_devices)
