"""Login and logout: GET/POST /login, /logout, /logout/all, /account/whoami."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router


async def get_login(req: ApiRequest) -> dict[str, Any]:
    return {"flows": req.hs.login.flows()}


async def post_login(req: ApiRequest) -> dict[str, Any]:
    body = await req.json_object()
    token = req.access_token()
    service = req.hs.app_services.by_token(token) if token is not None else None
    return await req.hs.login.login(body, req.client_ip, service)


async def logout(req: ApiRequest) -> dict[str, Any]:
    hs = req.hs
    requester = await req.authenticate(allow_guest=True)
    if requester.device_id is not None:
        await hs.devices.delete_devices(requester.user_id, [requester.device_id])
    elif requester.token_id is not None:
        await hs.auth.revoke_token(requester.token_id)
    return {}


async def logout_all(req: ApiRequest) -> dict[str, Any]:
    hs = req.hs
    requester = await req.authenticate(allow_guest=True)
    await hs.devices.delete_all_devices(requester.user_id)
    return {}


async def whoami(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate(allow_guest=True)
    result: dict[str, Any] = {"user_id": requester.user_id, "is_guest": requester.is_guest}
    if requester.device_id is not None:
        result["device_id"] = requester.device_id
    return result


def register(router: Router) -> None:
    router.add_client("GET", "/login", get_login)
    router.add_client("POST", "/login", post_login)
    router.add_client("POST", "/logout", logout)
    router.add_client("POST", "/logout/all", logout_all)
    router.add_client("GET", "/account/whoami", whoami)
