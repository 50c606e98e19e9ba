"""Joining, knocking, leaving, inviting, kicking, banning and forgetting."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Handler, Router
from hamlet.handlers.common.errors import BadJsonError, MissingParamError


def _reason(body: dict[str, Any]) -> str | None:
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise BadJsonError("reason must be a string")
    return reason


def _target(body: dict[str, Any]) -> str:
    user_id = body.get("user_id")
    if user_id is None:
        raise MissingParamError("Missing user_id")
    if not isinstance(user_id, str):
        raise BadJsonError("user_id must be a string")
    return user_id


async def join(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object(allow_empty=True)
    hs = req.hs
    room_id = await hs.membership.resolve_room(
        req.params.get("roomIdOrAlias") or req.params["roomId"]
    )
    await hs.room_ratelimits.join(requester, room_id)
    await hs.membership.update_membership(
        requester.user_id, room_id, requester.user_id, "join", reason=_reason(body)
    )
    return {"room_id": room_id}


async def knock(req: ApiRequest) -> dict[str, Any]:
    """`server_name`/`via` name servers to knock through; every room we can
    knock on is local, so they are accepted and ignored."""
    requester = await req.authenticate()
    body = await req.json_object(allow_empty=True)
    hs = req.hs
    room_id = await hs.membership.resolve_room(req.params["roomIdOrAlias"])
    # Synapse counts a knock against the per-user action limit, not the join one.
    await hs.room_ratelimits.message(requester)
    await hs.membership.update_membership(
        requester.user_id, room_id, requester.user_id, "knock", reason=_reason(body)
    )
    return {"room_id": room_id}


async def leave(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object(allow_empty=True)
    await req.hs.membership.update_membership(
        requester.user_id, req.params["roomId"], requester.user_id, "leave", reason=_reason(body)
    )
    return {}


async def invite(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object()
    target = _target(body)
    room_id = req.params["roomId"]
    hs = req.hs
    await hs.room_ratelimits.invite(requester, room_id, target)
    await hs.membership.update_membership(
        requester.user_id, room_id, target, "invite", reason=_reason(body)
    )
    return {}


def _action(membership: str, action: str) -> Handler:
    async def handler(req: ApiRequest) -> dict[str, Any]:
        requester = await req.authenticate()
        body = await req.json_object()
        await req.hs.membership.update_membership(
            requester.user_id,
            req.params["roomId"],
            _target(body),
            membership,
            action=action,
            reason=_reason(body),
        )
        return {}

    return handler


async def forget(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    await req.hs.membership.forget(requester.user_id, req.params["roomId"])
    return {}


def register(router: Router) -> None:
    router.add_client("POST", "/join/{roomIdOrAlias}", join)
    router.add_client("POST", "/rooms/{roomId}/join", join)
    router.add_client("POST", "/knock/{roomIdOrAlias}", knock)
    router.add_client("POST", "/rooms/{roomId}/leave", leave)
    router.add_client("POST", "/rooms/{roomId}/invite", invite)
    router.add_client("POST", "/rooms/{roomId}/kick", _action("leave", "kick"))
    router.add_client("POST", "/rooms/{roomId}/ban", _action("ban", "ban"))
    router.add_client("POST", "/rooms/{roomId}/unban", _action("leave", "unban"))
    router.add_client("POST", "/rooms/{roomId}/forget", forget)
