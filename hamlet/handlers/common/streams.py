"""Sync tokens: one position per stream, and what a stream offers the notifier."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Final, Protocol

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

_TOKEN = re.compile(r"^s([0-9]{1,18}(?:_[0-9]{1,18})*)$")


class StreamProvider(Protocol):
    """One stream the notifier knows the position of."""

    name: str

    def current_position(self) -> int: ...


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
        """Parse a token from `to_string()`; anything else is a 400 M_INVALID_PARAM."""
        m = _TOKEN.match(text)
        if m is None:
            raise InvalidParamError(f"Invalid stream token {text[:64]!r}")
        parts = m.group(1).split("_")
        if len(parts) != len(STREAM_NAMES):
            raise InvalidParamError(f"Invalid stream token {text[:64]!r}")
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
