"""Per-connection state of sliding sync: which rooms a client has, as of which `pos`.

Kept in memory only: after a restart every `pos` is unknown (400
M_UNKNOWN_POS) and clients start their connection again, as the proposal
allows. Bounded: a few connections per user and a total, least recently
used dropped first, and per connection only the positions a client may
still send (the one it used last and the newest).
"""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from hamlet.handlers.common.errors import InvalidParamError, MatrixError
from hamlet.handlers.common.streams import StreamToken
from hamlet.handlers.sliding_sync.params import RoomParams

MAX_CONNECTIONS_PER_USER: Final = 10
MAX_CONNECTIONS: Final = 10_000
_POS = re.compile(r"^([0-9a-f]{8})_([0-9]{1,18})$")

ConnectionKey = tuple[str, str | None, str]


class UnknownPosError(MatrixError):
    def __init__(self) -> None:
        super().__init__(400, "M_UNKNOWN_POS", "Unknown position; start the connection again")


@dataclass(frozen=True, slots=True)
class SentRoom:
    """A room as a connection has it: with which parameters, up to which event."""

    params: RoomParams
    #: The `events` position the room was last sent up to; a room that left
    #: the lists' ranges keeps it, and gets what it missed once back.
    position: int


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """What a client has once it got the response carrying one `pos`."""

    token: StreamToken
    sent: dict[str, SentRoom] = field(default_factory=dict)


class Connections:
    def __init__(self) -> None:
        # A pos from before a restart must not match one of this process.
        self._instance = secrets.token_hex(4)
        self._next = 0
        self._connections: OrderedDict[ConnectionKey, OrderedDict[int, ConnectionState]] = (
            OrderedDict()
        )

    def get(self, key: ConnectionKey, pos: str) -> ConnectionState:
        """The state a `pos` stands for; older positions of the connection are forgotten."""
        m = _POS.match(pos)
        if m is None:
            raise InvalidParamError(f"Invalid pos {pos[:64]!r}")
        positions = self._connections.get(key)
        number = int(m.group(2))
        if m.group(1) != self._instance or positions is None or number not in positions:
            raise UnknownPosError()
        self._connections.move_to_end(key)
        for older in [n for n in positions if n < number]:
            del positions[older]
        return positions[number]

    def add(self, key: ConnectionKey, state: ConnectionState, *, reset: bool) -> str:
        """Record the state of a new response; returns its `pos`."""
        self._next += 1
        positions = self._connections.get(key)
        if positions is None or reset:
            positions = OrderedDict()
            self._connections[key] = positions
            self._evict(key[0])
        self._connections.move_to_end(key)
        positions[self._next] = state
        while len(positions) > 2:
            positions.popitem(last=False)
        return f"{self._instance}_{self._next}"

    def _evict(self, user_id: str) -> None:
        mine = [k for k in self._connections if k[0] == user_id]
        for key in mine[: max(0, len(mine) - MAX_CONNECTIONS_PER_USER)]:
            del self._connections[key]
        while len(self._connections) > MAX_CONNECTIONS:
            self._connections.popitem(last=False)

    def __len__(self) -> int:
        return len(self._connections)
