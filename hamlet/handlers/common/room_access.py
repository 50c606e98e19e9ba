"""What the user-stream handlers need to know about rooms, as narrow Protocols.

The rooms/membership handlers implement these; tests use small fakes.
"""

from __future__ import annotations

from typing import Protocol


class MembershipChecker(Protocol):
    async def is_joined(self, user_id: str, room_id: str) -> bool:
        """Is the user joined to the room now?"""
        ...


class RoomSharing(Protocol):
    async def users_sharing_rooms(self, user_id: str) -> set[str]:
        """Every user joined to at least one room the user is joined to."""
        ...
