"""`/profile/{userId}` and its `displayname` and `avatar_url` fields."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.core.ids import UserID
from hamlet.handlers.common.errors import MissingParamError, NotFoundError
from hamlet.handlers.common.requester import Requester


async def _lookup_requester(req: ApiRequest) -> Requester | None:
    if req.hs.config.require_auth_for_profile_requests or req.access_token() is not None:
        return await req.authenticate(allow_guest=True)
    return None


async def _profile(req: ApiRequest, target: str) -> dict[str, Any]:
    """The profile of a user of ours, or of another server's (asked over federation)."""
    if UserID.is_valid(target):
        domain = UserID.from_string(target).domain
        if domain != req.hs.server_name:
            return await req.hs.federation_queries.profile(target, domain)
    return await req.hs.profile.get_profile(target)


async def get_profile(req: ApiRequest) -> dict[str, Any]:
    requester = await _lookup_requester(req)
    target = req.params["userId"]
    await req.hs.profile.check_may_look_up(requester, target, req.client_ip)
    return await _profile(req, target)


def _field_handlers(field: str):  # type: ignore[no-untyped-def]
    async def get_field(req: ApiRequest) -> dict[str, Any]:
        requester = await _lookup_requester(req)
        target = req.params["userId"]
        await req.hs.profile.check_may_look_up(requester, target, req.client_ip)
        profile = await _profile(req, target)
        if field not in profile:
            raise NotFoundError("The requested profile key does not exist")
        return {field: profile[field]}

    async def put_field(req: ApiRequest) -> dict[str, Any]:
        requester = await req.authenticate(allow_guest=True)
        body = await req.json_object()
        if field not in body:
            raise MissingParamError(f"Missing key '{field}'")
        await req.hs.profile.set_field(requester, req.params["userId"], field, body[field])
        return {}

    return get_field, put_field


def register(router: Router) -> None:
    router.add_client("GET", "/profile/{userId}", get_profile)
    for field in ("displayname", "avatar_url"):
        get_field, put_field = _field_handlers(field)
        router.add_client("GET", f"/profile/{{userId}}/{field}", get_field)
        router.add_client("PUT", f"/profile/{{userId}}/{field}", put_field)
