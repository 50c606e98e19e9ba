"""MembershipHosts: which remote servers an event or EDU of a room goes to."""

from __future__ import annotations

from hamlet.handlers.federation.sender.hosts import MembershipHosts


class Members:
    def __init__(self, rows: list[tuple[str, str, int]]) -> None:
        self.rows = rows
        self.reads = 0

    async def room_members(self, room_id: str) -> list[tuple[str, str, int]]:
        self.reads += 1
        return list(self.rows)


async def test_servers_at_each_event_and_the_cache() -> None:
    members = Members(
        [
            ("@me:here.test", "join", 1),
            ("@a:one.test", "join", 5),
            ("@b:one.test", "join", 3),
            ("@c:two.test", "join", 9),
            ("@d:gone.test", "leave", 12),
            ("@e:gone.test", "ban", 7),
            ("@f:one.test", "leave", 20),  # one.test still has joined members
            ("@g:invited.test", "invite", 4),
            ("@h:not a server", "join", 2),
        ]
    )
    hosts = MembershipHosts("here.test", members)
    assert hosts.cached("!r:here.test") is None
    room = await hosts.remote_hosts("!r:here.test")
    assert room.joined == {"one.test": 3, "two.test": 9}
    assert room.departed == {"gone.test": 12}
    # Joined before the event, or left after it.
    assert room.at(2) == {"gone.test"}
    assert room.at(4) == {"one.test", "gone.test"}
    assert room.at(10) == {"one.test", "two.test", "gone.test"}
    assert room.at(12) == {"one.test", "two.test"}
    # Cached until the room's membership changes.
    assert await hosts.remote_hosts("!r:here.test") is room and members.reads == 1
    hosts.invalidate("!r:here.test")
    members.rows = [("@me:here.test", "join", 1)]
    empty = await hosts.remote_hosts("!r:here.test")
    assert not empty.joined and not empty.departed and members.reads == 2
    assert hosts.cached("!r:here.test") is empty
