"""createRoom presets and the power level helpers."""

from __future__ import annotations

import pytest

from hamlet.core.errors import EventFormatError
from hamlet.core.power_levels import (
    get_named_level,
    get_notification_level,
    get_required_level,
    get_room_creator,
    get_user_power_level,
    user_can_send,
)
from hamlet.core.presets import (
    default_power_levels_content,
    get_preset,
    preset_for_visibility,
    preset_initial_state,
)
from hamlet.core.room_versions import KNOWN_ROOM_VERSIONS

from .helpers import Room

V10 = KNOWN_ROOM_VERSIONS["10"]
V11 = KNOWN_ROOM_VERSIONS["11"]


def test_private_chat_preset() -> None:
    content = default_power_levels_content("@c:x", "private_chat", ["@i:x"])
    assert content["users"] == {"@c:x": 100}
    assert content["invite"] == 0
    assert content["events"]["m.room.power_levels"] == 100
    assert content["events"]["m.room.name"] == 50
    assert (content["ban"], content["kick"], content["redact"], content["state_default"]) == (
        50,
        50,
        50,
        50,
    )
    assert content["events_default"] == 0 and content["users_default"] == 0
    assert content["historical"] == 100
    assert preset_initial_state("private_chat") == [
        ("m.room.join_rules", "", {"join_rule": "invite"}),
        ("m.room.history_visibility", "", {"history_visibility": "shared"}),
        ("m.room.guest_access", "", {"guest_access": "can_join"}),
    ]


def test_trusted_private_chat_gives_invitees_ops() -> None:
    content = default_power_levels_content("@c:x", "trusted_private_chat", ["@i:x"])
    assert content["users"] == {"@c:x": 100, "@i:x": 100}
    assert content["invite"] == 0


def test_public_chat_preset() -> None:
    content = default_power_levels_content("@c:x", "public_chat", ["@i:x"])
    assert content["invite"] == 50
    assert content["users"] == {"@c:x": 100}
    state = preset_initial_state("public_chat")
    assert ("m.room.join_rules", "", {"join_rule": "public"}) in state
    assert all(t != "m.room.guest_access" for t, _, _ in state)


def test_override_and_unknown_preset() -> None:
    content = default_power_levels_content("@c:x", "public_chat", override={"ban": 100})
    assert content["ban"] == 100
    assert preset_for_visibility("public") == "public_chat"
    assert preset_for_visibility(None) == "private_chat"
    with pytest.raises(EventFormatError):
        get_preset("secret_chat")


def test_power_level_helpers() -> None:
    room = Room(V10, "@alice:test")
    room.create()
    room.set_member("@alice:test", "@alice:test", "join")
    # no power levels event
    assert get_user_power_level("@alice:test", room.state) == 100
    assert get_user_power_level("@bob:test", room.state) == 0
    assert get_required_level("m.room.name", True, None) == 50
    assert get_required_level("m.room.message", False, None) == 0
    assert get_named_level(None, "ban") == 50 and get_named_level(None, "invite") == 0
    assert get_notification_level(None) == 50
    room.send(
        "m.room.power_levels",
        "@alice:test",
        {
            "users": {"@alice:test": 90},
            "users_default": 5,
            "events": {"m.room.name": 7},
            "notifications": {"room": 20},
        },
        "",
    )
    pl = room.state[("m.room.power_levels", "")].content
    assert get_user_power_level("@alice:test", room.state) == 90
    assert get_user_power_level("@bob:test", room.state) == 5
    assert get_required_level("m.room.name", True, pl) == 7
    assert get_required_level("m.room.topic", True, pl) == 50
    assert get_notification_level(pl) == 20
    assert user_can_send("@bob:test", "m.room.message", False, room.state)
    assert not user_can_send("@bob:test", "m.room.name", True, room.state)


def test_creator_v10_v11() -> None:
    room10 = Room(V10, "@alice:test")
    assert get_room_creator(room10.create()) == "@alice:test"
    room11 = Room(V11, "@alice:test")
    create11 = room11.create()
    assert "creator" not in create11.content
    assert get_room_creator(create11) == "@alice:test"
