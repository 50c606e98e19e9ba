"""Registration tokens, for admins: /_synapse/admin/v1/registration_tokens..."""

from __future__ import annotations

from typing import Any

from hamlet.api.admin._params import optional_bool
from hamlet.api.admin.auth import require_admin
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.common.errors import InvalidParamError

BASE = "/_synapse/admin/v1/registration_tokens"


def _uses_allowed(body: dict[str, Any]) -> int | None:
    value = body.get("uses_allowed")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise InvalidParamError("uses_allowed must be a non-negative integer or null")
    return value


def _expiry_time(body: dict[str, Any]) -> int | None:
    value = body.get("expiry_time")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise InvalidParamError("expiry_time must be an integer or null")
    return value


async def list_tokens(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    tokens = await req.hs.registration_token_admin.list_tokens(valid=optional_bool(req, "valid"))
    return {"registration_tokens": tokens}


async def new_token(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    body = await req.json_object(allow_empty=True)
    uses_allowed = _uses_allowed(body)
    expiry_time = _expiry_time(body)
    token = body.get("token")
    if token is not None and not isinstance(token, str):
        raise InvalidParamError("token must be a string")
    length = body.get("length", 16)
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= 64:
        raise InvalidParamError("length must be an integer between 1 and 64")
    return await req.hs.registration_token_admin.create_token(
        token, length=length, uses_allowed=uses_allowed, expiry_time=expiry_time
    )


async def get_token(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    return await req.hs.registration_token_admin.get_token(req.params["token"])


async def update_token(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    body = await req.json_object(allow_empty=True)
    changes: dict[str, int | None] = {}
    if "uses_allowed" in body:
        changes["uses_allowed"] = _uses_allowed(body)
    if "expiry_time" in body:
        changes["expiry_time"] = _expiry_time(body)
    return await req.hs.registration_token_admin.update_token(req.params["token"], changes)


async def delete_token(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    await req.hs.registration_token_admin.delete_token(req.params["token"])
    return {}


def register(router: Router) -> None:
    router.add("GET", BASE, list_tokens)
    router.add("POST", f"{BASE}/new", new_token)
    router.add("GET", f"{BASE}/{{token}}", get_token)
    router.add("PUT", f"{BASE}/{{token}}", update_token)
    router.add("DELETE", f"{BASE}/{{token}}", delete_token)
