"""Joining, knocking, leaving, inviting, kicking, banning and forgetting."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Handler, Router
from hamlet.core.ids import get_domain_from_id
from hamlet.handlers.common.errors import BadJsonError, MissingParamError
from hamlet.handlers.rooms.sender import Sender


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


def _via(req: ApiRequest) -> list[str]:
    return [*req.query.getall("via", []), *req.query.getall("server_name", [])]


async def join(req: ApiRequest) -> dict[str, Any]:
    target = req.params.get("roomIdOrAlias") or req.params["roomId"]
    requester = await req.authenticate()
    joins = req.hs.federation_joins
    remote = await joins.locate(target, _via(req))
    if remote is None:
        return await _self_membership(req, "join", target)
    room_id, servers = remote
    invite = await req.hs.federation_invites.received_invite(requester.user_id, room_id)
    if invite is not None:
        servers = [*_via(req), get_domain_from_id(invite.sender), *servers]
    await req.hs.room_ratelimits.remote_join(Sender.of(requester))
    await joins.join(requester.user_id, room_id, servers)
    return {"room_id": room_id}


async def knock(req: ApiRequest) -> dict[str, Any]:
    """A room we are not in is knocked on through `via`/`server_name` (or
    the alias's or room ID's server)."""
    target = req.params["roomIdOrAlias"]
    requester = await req.authenticate()
    remote = await req.hs.federation_joins.locate(target, _via(req))
    if remote is None:
        return await _self_membership(req, "knock", target)
    body = await req.json_object(allow_empty=True)
    reason = _reason(body)
    room_id, servers = remote
    content = await req.hs.membership.profile_content(requester.user_id)
    if reason is not None:
        content["reason"] = reason
    await req.hs.federation_knocks.knock(requester.user_id, room_id, servers, content)
    return {"room_id": room_id}


async def _self_membership(req: ApiRequest, membership: str, room: str) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object(allow_empty=True)
    pipeline = req.hs.event_pipeline
    room_id = await pipeline.resolve_room(room)
    await pipeline.update_membership(
        Sender.of(requester), room_id, requester.user_id, membership, reason=_reason(body)
    )
    return {"room_id": room_id}


async def leave(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object(allow_empty=True)
    await req.hs.event_pipeline.update_membership(
        Sender.of(requester),
        req.params["roomId"],
        requester.user_id,
        "leave",
        reason=_reason(body),
    )
    return {}


def _action(membership: str, action: str) -> Handler:
    """invite, kick, ban, unban: a membership change for the body's `user_id`."""

    async def handler(req: ApiRequest) -> dict[str, Any]:
        requester = await req.authenticate()
        body = await req.json_object()
        await req.hs.event_pipeline.update_membership(
            Sender.of(requester),
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
    router.add_client("POST", "/rooms/{roomId}/invite", _action("invite", "invite"))
    router.add_client("POST", "/rooms/{roomId}/kick", _action("leave", "kick"))
    router.add_client("POST", "/rooms/{roomId}/ban", _action("ban", "ban"))
    router.add_client("POST", "/rooms/{roomId}/unban", _action("leave", "unban"))
    router.add_client("POST", "/rooms/{roomId}/forget", forget)
