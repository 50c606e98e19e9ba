"""Registration tokens, for admins: /_synapse/admin/v1/registration_tokens..."""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import asdict
from typing import Any, Final

from hamlet.api.admin._params import optional_bool
from hamlet.api.admin.auth import require_admin
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.common.errors import InvalidParamError, NotFoundError

BASE = "/_synapse/admin/v1/registration_tokens"
TOKEN_CHARS: Final = string.ascii_letters + string.digits + "._~-"
_TOKEN_RE: Final = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")


def _uses_allowed(body: dict[str, Any]) -> int | None:
    value = body.get("uses_allowed")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise InvalidParamError("uses_allowed must be a non-negative integer or null")
    return value


def _expiry_time(req: ApiRequest, body: dict[str, Any]) -> int | None:
    value = body.get("expiry_time")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParamError("expiry_time must be an integer or null")
    if value < req.hs.clock.time_msec():
        raise InvalidParamError("expiry_time must not be in the past")
    return value


async def _get(req: ApiRequest, token: str) -> dict[str, Any]:
    found = await req.hs.registration_token_store.get_token(token)
    if found is None:
        raise NotFoundError(f"No such registration token: {token}")
    return asdict(found)


async def list_tokens(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    tokens = await req.hs.registration_token_admin.list_tokens(
        valid=optional_bool(req, "valid"), now_ms=req.hs.clock.time_msec()
    )
    return {"registration_tokens": [asdict(t) for t in tokens]}


async def new_token(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    body = await req.json_object(allow_empty=True)
    uses_allowed = _uses_allowed(body)
    expiry_time = _expiry_time(req, body)
    store = req.hs.registration_token_store
    token = body.get("token")
    if token is not None:
        if not isinstance(token, str) or not _TOKEN_RE.match(token):
            raise InvalidParamError(
                "token must consist only of characters matched by the regex [A-Za-z0-9._~-]"
                " and be no more than 64 characters long"
            )
        if not await store.create_token(token, uses_allowed=uses_allowed, expiry_time=expiry_time):
            raise InvalidParamError(f"Token already exists: {token}")
        return await _get(req, token)
    length = body.get("length", 16)
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= 64:
        raise InvalidParamError("length must be an integer between 1 and 64")
    for _attempt in range(10):
        token = "".join(secrets.choice(TOKEN_CHARS) for _ in range(length))
        if await store.create_token(token, uses_allowed=uses_allowed, expiry_time=expiry_time):
            return await _get(req, token)
    raise InvalidParamError("Could not generate a free token; try a greater length")


async def get_token(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    return await _get(req, req.params["token"])


async def update_token(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    body = await req.json_object(allow_empty=True)
    changes: dict[str, int | None] = {}
    if "uses_allowed" in body:
        changes["uses_allowed"] = _uses_allowed(body)
    if "expiry_time" in body:
        changes["expiry_time"] = _expiry_time(req, body)
    token = req.params["token"]
    if not await req.hs.registration_token_admin.update_token(token, changes):
        raise NotFoundError(f"No such registration token: {token}")
    return await _get(req, token)


async def delete_token(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    token = req.params["token"]
    if not await req.hs.registration_token_admin.delete_token(token):
        raise NotFoundError(f"No such registration token: {token}")
    return {}


def register(router: Router) -> None:
    router.add("GET", BASE, list_tokens)
    router.add("POST", f"{BASE}/new", new_token)
    router.add("GET", f"{BASE}/{{token}}", get_token)
    router.add("PUT", f"{BASE}/{{token}}", update_token)
    router.add("DELETE", f"{BASE}/{{token}}", delete_token)
