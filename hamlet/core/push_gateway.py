"""What a homeserver POSTs to a push gateway's /_matrix/push/v1/notify, and
what the gateway's answer means (push-gateway API, Sygnal's fields)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

NOTIFY_PATH: Final = "/_matrix/push/v1/notify"
EVENT_ID_ONLY: Final = "event_id_only"


class PusherDataError(ValueError):
    """A pusher's `data` a homeserver cannot deliver to."""


def check_http_data(data: Any) -> None:
    """An HTTP pusher's `data`: a `url` whose path is the notify endpoint
    (Synapse's check; https is the gateway's business, as Synapse says)."""
    if not isinstance(data, Mapping):
        raise PusherDataError("'data' must be an object")
    url = data.get("url")
    if url is None:
        raise PusherDataError("'url' required in data for HTTP pusher")
    if not isinstance(url, str):
        raise PusherDataError("'url' must be a string")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise PusherDataError("'url' is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PusherDataError("'url' must be an http or https URL")
    if parts.path != NOTIFY_PATH:
        raise PusherDataError(f"'url' must have a path of '{NOTIFY_PATH}'")
    fmt = data.get("format")
    if fmt is not None and not isinstance(fmt, str):
        raise PusherDataError("'format' must be a string")


def tweaks_for_actions(actions: Sequence[Any]) -> dict[str, Any]:
    """The `set_tweak` actions as a dict (`highlight` without a value is true)."""
    tweaks: dict[str, Any] = {}
    for action in actions:
        if isinstance(action, Mapping) and isinstance(action.get("set_tweak"), str):
            tweaks[action["set_tweak"]] = action.get("value", True)
    return tweaks


@dataclass(frozen=True, slots=True)
class PusherInfo:
    app_id: str
    pushkey: str
    pushkey_ts_ms: int
    data: Mapping[str, Any]

    @property
    def event_id_only(self) -> bool:
        return self.data.get("format") == EVENT_ID_ONLY


@dataclass(frozen=True, slots=True)
class EventInfo:
    event_id: str
    room_id: str
    type: str
    sender: str
    content: Mapping[str, Any]
    state_key: str | None = None
    sender_display_name: str | None = None
    room_name: str | None = None


def priority(event_type: str, tweaks: Mapping[str, Any]) -> str:
    """High when the phone should wake: a sound, a highlight, or an encrypted
    event whose rules the server cannot see (Synapse's choice)."""
    if event_type == "m.room.encrypted" or tweaks.get("highlight") or tweaks.get("sound"):
        return "high"
    return "low"


def notification_body(
    pusher: PusherInfo,
    event: EventInfo,
    actions: Sequence[Any],
    *,
    unread: int,
    user_id: str,
    include_content: bool = True,
) -> dict[str, Any]:
    """`{"notification": ...}` for one event and one device."""
    tweaks = tweaks_for_actions(actions)
    prio = priority(event.type, tweaks)
    data = {k: v for k, v in pusher.data.items() if k != "url"}
    notification: dict[str, Any] = {"event_id": event.event_id, "room_id": event.room_id}
    if pusher.event_id_only:
        # The app fetches the event itself; tweaks are left out, as Synapse.
        tweaks = {}
    else:
        notification["type"] = event.type
        notification["sender"] = event.sender
        if event.type == "m.room.member" and event.state_key is not None:
            notification["membership"] = event.content.get("membership")
            notification["user_is_target"] = event.state_key == user_id
        if include_content and event.content:
            notification["content"] = dict(event.content)
        if event.sender_display_name:
            notification["sender_display_name"] = event.sender_display_name
        if event.room_name:
            notification["room_name"] = event.room_name
    notification["prio"] = prio
    notification["counts"] = {"unread": unread}
    device: dict[str, Any] = {
        "app_id": pusher.app_id,
        "pushkey": pusher.pushkey,
        "pushkey_ts": pusher.pushkey_ts_ms // 1000,
        "data": data,
    }
    if tweaks:
        device["tweaks"] = tweaks
    notification["devices"] = [device]
    return {"notification": notification}


def badge_body(pusher: PusherInfo, unread: int) -> dict[str, Any]:
    """A notification carrying only the new badge count (after the user read)."""
    device = {
        "app_id": pusher.app_id,
        "pushkey": pusher.pushkey,
        "pushkey_ts": pusher.pushkey_ts_ms // 1000,
        "data": {k: v for k, v in pusher.data.items() if k != "url"},
    }
    return {
        "notification": {
            "id": "",
            "type": None,
            "sender": "",
            "counts": {"unread": unread},
            "devices": [device],
        }
    }


def rejected_pushkeys(answer: Any) -> list[str]:
    """The `rejected` pushkeys of a gateway's answer (nothing if malformed)."""
    if not isinstance(answer, Mapping):
        return []
    rejected = answer.get("rejected")
    if not isinstance(rejected, list):
        return []
    return [k for k in rejected if isinstance(k, str)]
