"""Device management: /devices, /devices/{deviceId}, /delete_devices."""

from __future__ import annotations

from typing import Any

from hamlet.api.client._fields import uia_request_key
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.accounts.account import PASSWORD_FLOWS
from hamlet.handlers.accounts.devices import MAX_DISPLAY_NAME_LENGTH
from hamlet.handlers.common.errors import (
    BadJsonError,
    MatrixError,
    MissingParamError,
    NotFoundError,
)
from hamlet.storage.stores.devices import DeviceRecord


def _device_json(device: DeviceRecord) -> dict[str, Any]:
    """The spec's Device: fields the server does not know are left out, not null."""
    out: dict[str, Any] = {"device_id": device.device_id}
    for name, value in (
        ("display_name", device.display_name),
        ("last_seen_ip", device.last_seen_ip),
        ("last_seen_ts", device.last_seen_ts),
    ):
        if value is not None:
            out[name] = value
    return out


async def list_devices(req: ApiRequest) -> dict[str, Any]:
    requester = await req.hs.auth.get_user_by_req(req, allow_guest=True)
    devices = await req.hs.devices.get_devices(requester.user_id)
    return {"devices": [_device_json(d) for d in devices]}


async def get_device(req: ApiRequest) -> dict[str, Any]:
    requester = await req.hs.auth.get_user_by_req(req, allow_guest=True)
    device = await req.hs.devices.get_device(requester.user_id, req.params["deviceId"])
    if device is None:
        raise NotFoundError("No device found")
    return _device_json(device)


async def update_device(req: ApiRequest) -> dict[str, Any]:
    requester = await req.hs.auth.get_user_by_req(req, allow_guest=True)
    body = await req.json_object()
    display_name = body.get("display_name")
    if display_name is None:
        # Nothing to change; still a 404 for a device that does not exist.
        if await req.hs.devices.get_device(requester.user_id, req.params["deviceId"]) is None:
            raise NotFoundError("No device found")
        return {}
    if not isinstance(display_name, str):
        raise BadJsonError("'display_name' must be a string")
    if len(display_name) > MAX_DISPLAY_NAME_LENGTH:
        raise MatrixError(
            400,
            "M_TOO_LARGE",
            f"Device display name is too long (max {MAX_DISPLAY_NAME_LENGTH})",
        )
    changed = await req.hs.devices.set_display_name(
        requester.user_id, req.params["deviceId"], display_name
    )
    if not changed:
        raise NotFoundError("No device found")
    return {}


async def _delete(req: ApiRequest, device_ids: list[str], auth: object) -> dict[str, Any]:
    hs = req.hs
    requester = req.requester
    assert requester is not None
    async with hs.uia.authenticate(
        auth, request_key=uia_request_key(req), flows=PASSWORD_FLOWS, user_id=requester.user_id
    ):
        await hs.devices.delete_devices(requester.user_id, device_ids)
    return {}


async def delete_device(req: ApiRequest) -> dict[str, Any]:
    await req.hs.auth.get_user_by_req(req)
    body = await req.json_object(allow_empty=True)
    return await _delete(req, [req.params["deviceId"]], body.get("auth"))


async def delete_devices(req: ApiRequest) -> dict[str, Any]:
    await req.hs.auth.get_user_by_req(req)
    body = await req.json_object()
    devices = body.get("devices")
    if devices is None:
        raise MissingParamError("Missing param: devices")
    if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
        raise BadJsonError("'devices' must be a list of strings")
    return await _delete(req, devices, body.get("auth"))


def register(router: Router) -> None:
    router.add_client("GET", "/devices", list_devices)
    router.add_client("GET", "/devices/{deviceId}", get_device)
    router.add_client("PUT", "/devices/{deviceId}", update_device)
    router.add_client("DELETE", "/devices/{deviceId}", delete_device)
    router.add_client("POST", "/delete_devices", delete_devices)
