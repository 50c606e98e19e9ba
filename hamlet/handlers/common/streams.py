"""Sync tokens (one position per stream) and the interface every stream offers.

A stream provider answers two things: where the stream is now
(`current_position()`, all the notifier needs), and what changed for one
user between two tokens (`changes()`), as a typed result of its own. /sync
v3 assembles its response from the providers and the API layer turns the
typed results into JSON; sliding sync (MSC4186) reads the same providers
for other rooms and windows and shapes its own JSON.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

from hamlet.handlers.common.errors import InvalidParamError

# The order of the positions inside a token string; append new streams at the end.
STREAM_NAMES: Final = (
    "events",
    "typing",
    "receipts",
    "account_data",
    "to_device",
    "presence",
    "device_lists",
)

#: Streams kept in memory only: they restart from 0 with the process.
IN_MEMORY_STREAMS: Final = frozenset({"typing", "presence"})

# A token from a newer version may carry streams this one does not know;
# bounded so a hostile token cannot make parsing expensive.
MAX_TOKEN_PARTS: Final = 32
_TOKEN = re.compile(rf"^s([0-9]{{1,18}}(?:_[0-9]{{1,18}}){{0,{MAX_TOKEN_PARTS - 1}}})$")


class StreamPosition(Protocol):
    """One stream the notifier knows the position of."""

    @property
    def name(self) -> str: ...

    def current_position(self) -> int: ...


@dataclass(frozen=True, slots=True)
class SyncScope:
    """Whose changes a provider reads, and in which rooms.

    `room_ids` are the rooms the consumer wants room-keyed news of (typing,
    receipts): all joined rooms for /sync v3, only the rooms of its windows
    for sliding sync. That is why it is an argument and not looked up by
    each provider.
    """

    user_id: str
    device_id: str | None
    room_ids: frozenset[str] = frozenset()


R_co = TypeVar("R_co", covariant=True)


class StreamProvider(StreamPosition, Protocol[R_co]):
    """A stream /sync (and sliding sync) reads: its position, and its changes.

    `changes(scope, since, upto)` is what changed for `scope` after `since`
    up to and including `upto`; `since=None` means an initial sync: everything
    as of `upto`. Both are whole tokens because some streams need another
    stream's position too (device lists read membership changes between the
    `events` positions) and the result may carry tokens (`prev_batch`). The
    result is a typed value, never JSON: each consumer shapes its own.
    """

    async def changes(
        self, scope: SyncScope, since: StreamToken | None, upto: StreamToken
    ) -> R_co: ...


@dataclass(frozen=True, slots=True)
class StreamToken:
    """Where a client is in every stream; `to_string()` is opaque to clients."""

    events: int = 0
    typing: int = 0
    receipts: int = 0
    account_data: int = 0
    to_device: int = 0
    presence: int = 0
    device_lists: int = 0

    def to_string(self) -> str:
        return "s" + "_".join(str(getattr(self, name)) for name in STREAM_NAMES)

    def __str__(self) -> str:
        return self.to_string()

    @classmethod
    def parse(cls, text: str) -> StreamToken:
        """Parse a token from `to_string()` of this or any other version.

        Tokens are open-ended, so adding a stream never invalidates the
        `since` a client stored:
        - A token minted before a stream existed lacks its position, which
          reads as 0 (as in Synapse). That is exact for a stream added by an
          upgrade: it recorded nothing before it existed, so every row in it
          is news to that client. And position 0 never replays history: each
          provider answers "since 0" with the stream's current state (account
          data, receipts, typing, presence), its undelivered inbox (to-device,
          which must not be skipped: delivery deletes it) or the changes it
          recorded (device lists, all made after the upgrade).
        - Trailing parts this version does not know (a token from a newer
          version, after a downgrade) are ignored; `next_batch` drops them,
          and were they to come back they read as missing, i.e. 0.
        Anything else is a 400 M_INVALID_PARAM.
        """
        m = _TOKEN.match(text)
        if m is None:
            raise InvalidParamError(f"Invalid stream token {text[:64]!r}")
        parts = m.group(1).split("_")[: len(STREAM_NAMES)]
        return cls(*(int(p) for p in parts))

    def get(self, stream: str) -> int:
        if stream not in STREAM_NAMES:
            raise KeyError(stream)
        value: int = getattr(self, stream)
        return value

    def copy_and_replace(self, stream: str, pos: int) -> StreamToken:
        if stream not in STREAM_NAMES:
            raise KeyError(stream)
        return dataclasses.replace(self, **{stream: pos})

    def is_after(self, other: StreamToken) -> bool:
        """True if any stream of this token is past the same stream of `other`."""
        return any(getattr(self, n) > getattr(other, n) for n in STREAM_NAMES)

    def ahead_streams(self, current: StreamToken) -> list[str]:
        """Streams where this token is past `current`: a token from before a restart.

        The caller should send those streams' current state, not an error.
        """
        return [n for n in STREAM_NAMES if getattr(self, n) > getattr(current, n)]
