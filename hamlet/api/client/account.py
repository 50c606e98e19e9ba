"""Account management: POST /account/password and /account/deactivate."""

from __future__ import annotations

from typing import Any

from hamlet.api.client._fields import opt_bool, uia_request_key
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.common.errors import MatrixError, MissingParamError


async def change_password(req: ApiRequest) -> dict[str, Any]:
    hs = req.hs
    requester = await req.authenticate()
    body = await req.json_object()
    new_password = body.get("new_password")
    if new_password is None:
        raise MissingParamError("Missing param: new_password")
    if not isinstance(new_password, str):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid password")
    await hs.account.change_password(
        requester,
        auth=body.get("auth"),
        request_key=uia_request_key(req),
        new_password=new_password,
        logout_devices=opt_bool(body, "logout_devices", True),
    )
    return {}


async def deactivate(req: ApiRequest) -> dict[str, Any]:
    hs = req.hs
    requester = await req.authenticate()
    body = await req.json_object(allow_empty=True)
    erase = opt_bool(body, "erase", False)
    await hs.deactivation.deactivate_own(
        requester, auth=body.get("auth"), request_key=uia_request_key(req), erase=erase
    )
    return {"id_server_unbind_result": "no-support"}


def register(router: Router) -> None:
    router.add_client("POST", "/account/password", change_password)
    router.add_client("POST", "/account/deactivate", deactivate)
