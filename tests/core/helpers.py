"""A tiny in-memory room for building signed events in tests."""

from __future__ import annotations

from typing import Any

from hamlet.core.crypto import signing_key_from_seed
from hamlet.core.events import Event, build_event
from hamlet.core.power_levels import StateKey
from hamlet.core.room_versions import RoomVersion

KEY = signing_key_from_seed(bytes(range(32)), "test")


class Room:
    """Builds events linearly and keeps the current state."""

    def __init__(self, room_version: RoomVersion, creator: str = "@alice:test") -> None:
        self.room_version = room_version
        self.room_id = "!room:test"
        self.creator = creator
        self.state: dict[StateKey, Event] = {}
        self.last: list[str] = []
        self.depth = 0
        self.ts = 1_000

    def make(
        self,
        type: str,
        sender: str,
        content: dict[str, Any],
        state_key: str | None = None,
        *,
        prev_events: list[str] | None = None,
        redacts: str | None = None,
        room_id: str | None = None,
        server_name: str | None = None,
    ) -> Event:
        """Build (but do not apply) an event at the room's current position."""
        self.ts += 1
        return build_event(
            self.room_version,
            room_id=room_id or self.room_id,
            sender=sender,
            type=type,
            content=content,
            state_key=state_key,
            prev_events=self.last if prev_events is None else prev_events,
            auth_events=[e.event_id for e in self.state.values()][:10],
            depth=self.depth + 1,
            origin_server_ts=self.ts,
            server_name=server_name or sender.split(":", 1)[1],
            signing_key=KEY,
            redacts=redacts,
        )

    def apply(self, event: Event) -> Event:
        """Make ``event`` the newest event and, for state, current state."""
        if event.state_key is not None:
            self.state[(event.type, event.state_key)] = event
        self.last = [event.event_id]
        self.depth += 1
        return event

    def send(
        self, type: str, sender: str, content: dict[str, Any], state_key: str | None = None
    ) -> Event:
        return self.apply(self.make(type, sender, content, state_key))

    def member(self, sender: str, target: str, membership: str, **extra: Any) -> Event:
        return self.make("m.room.member", sender, {"membership": membership, **extra}, target)

    def set_member(self, sender: str, target: str, membership: str, **extra: Any) -> Event:
        return self.apply(self.member(sender, target, membership, **extra))

    def create(self, **content: Any) -> Event:
        body: dict[str, Any] = {"room_version": self.room_version.identifier, **content}
        if not self.room_version.creator_from_sender:
            body.setdefault("creator", self.creator)
        return self.send("m.room.create", self.creator, body, "")

    def standard(self, join_rule: str = "public", **power: Any) -> None:
        """create, creator join, power levels (creator 100), join rules."""
        self.create()
        self.set_member(self.creator, self.creator, "join")
        self.send(
            "m.room.power_levels",
            self.creator,
            {"users": {self.creator: 100}, **power},
            "",
        )
        self.send("m.room.join_rules", self.creator, {"join_rule": join_rule}, "")
