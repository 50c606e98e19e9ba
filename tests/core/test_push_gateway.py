"""The push gateway body and pusher data checks, with plain data."""

from __future__ import annotations

import pytest

from hamlet.core.push_gateway import (
    EventInfo,
    PusherDataError,
    PusherInfo,
    badge_body,
    check_http_data,
    notification_body,
    priority,
    rejected_pushkeys,
    tweaks_for_actions,
)

URL = "https://push.example/_matrix/push/v1/notify"


def test_check_http_data() -> None:
    check_http_data({"url": URL, "format": "event_id_only"})
    check_http_data({"url": "http://10.1.2.3:8080/_matrix/push/v1/notify"})
    bad: object
    for bad in (
        None,
        [],
        {},
        {"url": 1},
        {"url": "https://push.example/notify"},
        {"url": "ftp://push.example/_matrix/push/v1/notify"},
        {"url": "/_matrix/push/v1/notify"},
        {"url": "http://[::1/_matrix/push/v1/notify"},
        {"url": URL, "format": 3},
    ):
        with pytest.raises(PusherDataError):
            check_http_data(bad)


def test_tweaks_and_priority() -> None:
    actions = ["notify", {"set_tweak": "sound", "value": "default"}, {"set_tweak": "highlight"}]
    assert tweaks_for_actions(actions) == {"sound": "default", "highlight": True}
    assert tweaks_for_actions(["notify", {"set_tweak": 5}, "dont_notify"]) == {}
    assert priority("m.room.message", {}) == "low"
    assert priority("m.room.message", {"highlight": False}) == "low"
    assert priority("m.room.message", {"sound": "default"}) == "high"
    assert priority("m.room.encrypted", {}) == "high"


EVENT = EventInfo(
    event_id="$e",
    room_id="!r:hs",
    type="m.room.member",
    sender="@a:hs",
    content={"membership": "invite"},
    state_key="@b:hs",
    sender_display_name="A",
    room_name="Room",
)


def test_full_body() -> None:
    pusher = PusherInfo("app", "key", 1_700_000_000_123, {"url": URL, "x": 1})
    body = notification_body(
        pusher,
        EVENT,
        ["notify", {"set_tweak": "sound", "value": "ring"}],
        unread=3,
        user_id="@b:hs",
    )
    assert body == {
        "notification": {
            "event_id": "$e",
            "room_id": "!r:hs",
            "type": "m.room.member",
            "sender": "@a:hs",
            "membership": "invite",
            "user_is_target": True,
            "content": {"membership": "invite"},
            "sender_display_name": "A",
            "room_name": "Room",
            "prio": "high",
            "counts": {"unread": 3},
            "devices": [
                {
                    "app_id": "app",
                    "pushkey": "key",
                    "pushkey_ts": 1_700_000_000,
                    "data": {"x": 1},
                    "tweaks": {"sound": "ring"},
                }
            ],
        }
    }
    hidden = notification_body(
        pusher, EVENT, ["notify"], unread=0, user_id="@c:hs", include_content=False
    )
    assert "content" not in hidden["notification"]
    assert hidden["notification"]["user_is_target"] is False


def test_event_id_only_body() -> None:
    pusher = PusherInfo("app", "key", 5000, {"url": URL, "format": "event_id_only"})
    body = notification_body(
        pusher, EVENT, ["notify", {"set_tweak": "highlight"}], unread=1, user_id="@b:hs"
    )
    assert body == {
        "notification": {
            "event_id": "$e",
            "room_id": "!r:hs",
            "prio": "high",
            "counts": {"unread": 1},
            "devices": [
                {
                    "app_id": "app",
                    "pushkey": "key",
                    "pushkey_ts": 5,
                    "data": {"format": "event_id_only"},
                }
            ],
        }
    }


def test_rejected_pushkeys() -> None:
    assert rejected_pushkeys({"rejected": ["a", 1, "b"]}) == ["a", "b"]
    assert rejected_pushkeys({"rejected": "a"}) == []
    assert rejected_pushkeys(None) == []
    assert rejected_pushkeys([]) == []


def test_badge_body() -> None:
    pusher = PusherInfo("app", "key", 9000, {"url": URL, "format": "event_id_only"})
    assert badge_body(pusher, 2) == {
        "notification": {
            "id": "",
            "type": None,
            "sender": "",
            "counts": {"unread": 2},
            "devices": [
                {
                    "app_id": "app",
                    "pushkey": "key",
                    "pushkey_ts": 9,
                    "data": {"format": "event_id_only"},
                }
            ],
        }
    }
