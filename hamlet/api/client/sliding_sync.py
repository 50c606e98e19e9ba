"""POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync (MSC4186).

As Synapse serves it: `pos` and `timeout` in the query, everything else in the body.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hamlet.api.client.sync_json import (
    account_data_json,
    ephemeral_json,
    stripped_json,
    timeline_json,
)
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.api.server import shared_json_response
from hamlet.handlers.common.errors import InvalidParamError
from hamlet.handlers.sliding_sync.handler import SlidingSyncRequest
from hamlet.handlers.sliding_sync.params import parse_params
from hamlet.handlers.sliding_sync.results import Hero, SlidingRoom, SlidingSyncResult
from hamlet.handlers.sync.results import ClientEvent, StrippedRoom, Timeline

PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

JsonDict = dict[str, Any]


def _timeline(timeline: Timeline, state: list[ClientEvent], num_live: int) -> JsonDict:
    served = timeline_json(timeline)
    return {
        "required_state": state,
        "timeline": served["events"],
        "limited": served["limited"],
        "prev_batch": served["prev_batch"],
        "num_live": num_live,
    }


def room_json(room: SlidingRoom) -> JsonDict:
    out: JsonDict = {"bump_stamp": room.bump_stamp, "membership": room.membership}
    if room.initial:
        out["initial"] = True
    if room.expanded_timeline:
        # Synapse 1.163's name; the proposal has since dropped the prefix.
        out["unstable_expanded_timeline"] = True
    if room.is_dm is not None:
        out["is_dm"] = room.is_dm
    if room.name is not None:
        out["name"] = room.name
    if room.avatar is not None:
        out["avatar"] = room.avatar
    if room.heroes:
        out["heroes"] = [hero_json(h) for h in room.heroes]
    if room.invite_state is not None:
        out["invite_state"] = stripped_json(StrippedRoom(room.invite_state))["events"]
    left = room.left
    if left is not None:
        out.update(_timeline(left.timeline, left.state, room.num_live))
    joined = room.joined
    if joined is not None:
        out.update(_timeline(joined.timeline, joined.state, room.num_live))
        out.update(
            {
                "joined_count": joined.summary.joined_member_count,
                "invited_count": joined.summary.invited_member_count,
                "notification_count": joined.unread.notification_count,
                "highlight_count": joined.unread.highlight_count,
            }
        )
    return out


def hero_json(hero: Hero) -> JsonDict:
    out: JsonDict = {"user_id": hero.user_id}
    if hero.displayname is not None:
        out["displayname"] = hero.displayname
    if hero.avatar_url is not None:
        out["avatar_url"] = hero.avatar_url
    return out


def response_json(result: SlidingSyncResult) -> JsonDict:
    extensions: JsonDict = {}
    if result.to_device is not None:
        extensions["to_device"] = {
            "next_batch": result.to_device.next_batch,
            "events": [
                {"sender": m.sender, "type": m.type, "content": m.content}
                for m in result.to_device.messages
            ],
        }
    if result.e2ee is not None:
        keys = result.e2ee.device_keys
        extensions["e2ee"] = {
            "device_lists": result.e2ee.device_lists.to_json(),
            "device_one_time_keys_count": keys.one_time_key_counts,
            "device_unused_fallback_key_types": keys.unused_fallback_key_types,
        }
    if result.account_data is not None:
        extensions["account_data"] = {
            "global": account_data_json(result.account_data.global_events),
            "rooms": {r: account_data_json(e) for r, e in result.account_data.rooms.items()},
        }
    if result.receipts is not None:
        extensions["receipts"] = {
            "rooms": {r: ephemeral_json(receipts) for r, receipts in result.receipts.items()}
        }
    if result.typing is not None:
        extensions["typing"] = {
            "rooms": {r: ephemeral_json(typing) for r, typing in result.typing.items()}
        }
    return {
        "pos": result.pos,
        "lists": {name: {"count": count} for name, count in result.lists.items()},
        "rooms": {room_id: room_json(room) for room_id, room in result.rooms.items()},
        "extensions": extensions,
    }


async def sliding_sync(req: ApiRequest) -> web.Response:
    requester = await req.authenticate()
    timeout = req.query_int("timeout", 0) or 0
    if timeout < 0:
        raise InvalidParamError("timeout must not be negative")
    body = await req.json_object(allow_empty=True)
    request = SlidingSyncRequest(
        requester=requester,
        params=parse_params(body),
        pos=req.query.get("pos"),
        timeout_ms=timeout,
    )
    result = await req.hs.sliding_sync.sync(request)
    return shared_json_response(result.encoded, "msc4186", lambda: response_json(result))


def register(router: Router) -> None:
    router.add("POST", PATH, sliding_sync, capped=False)
