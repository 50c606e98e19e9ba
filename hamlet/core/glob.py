"""Glob matching for push rules without backtracking, under a work budget.

The spec's globs know `*` (any run of characters) and `?` (one character),
matched case-insensitively against a whole value, or for `content.body`
against any run of whole words. A regex (each `*` as `.*?`) backtracks: a
pattern like `*a*a*a*b` against a long body takes polynomial time, and the
pattern comes from one user while the body comes from another.

A `Glob` is compiled once: its pattern is cut at each `*` into segments of
literal text and `?`. A whole-value match pins the first segment to the
start and the last to the end, and finds the middle ones leftmost-first in
order, which is optimal for globs (a leftmost occurrence leaves the most
room to the segments after it), so every character of the value is
scanned about once per segment boundary rather than once per way of
splitting it. Literal runs are found with `str.find` (C speed). The only
repeated work -- trying later starts for a first segment that must begin
at a word boundary, a last one that must end at one, or a segment with
`?` whose literal parts occur without lining up -- is charged to a
`WorkBudget`, so one event or one request can do a bounded amount of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

#: The unit of work is one character scanned by `str.find` (about a
#: nanosecond). A pass through a Python-level loop costs about a
#: microsecond whatever it scans, and checking one literal piece in place
#: a fifth of that; both are charged so, on top of the characters.
LOOP_COST: Final = 1000
PIECE_COST: Final = 200

_WORD_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


class BudgetExhaustedError(Exception):
    """The work budget ran out before the match was decided."""


class WorkBudget:
    """Steps (roughly: characters scanned) still allowed."""

    __slots__ = ("remaining",)

    def __init__(self, steps: int) -> None:
        self.remaining = steps

    def spend(self, steps: int) -> None:
        self.remaining -= steps
        if self.remaining < 0:
            raise BudgetExhaustedError


#: Lower-case forms `str.lower()` picks by context or leaves alone, mapped
#: to one form so a pattern piece and a value fold alike.
_FOLD_MORE: Final = str.maketrans({"\u03c2": "\u03c3", "\u017f": "s"})  # final sigma, long s


def fold(value: str) -> str:
    """Lower-case `value` keeping every character at its index (the few
    characters that lower-case to two stay as they are)."""
    lowered = value.lower()
    if len(lowered) != len(value):
        lowered = "".join(c if len(c.lower()) != 1 else c.lower() for c in value)
    return lowered.translate(_FOLD_MORE)


def _is_word(text: str, index: int) -> bool:
    return 0 <= index < len(text) and text[index] in _WORD_CHARS


@dataclass(frozen=True, slots=True)
class _Segment:
    """A run between two `*`: `length` characters, of which the literal
    `pieces` (offset, lower-cased text) must match; the rest are `?`."""

    length: int
    pieces: tuple[tuple[int, str], ...]

    @classmethod
    def parse(cls, text: str) -> _Segment:
        pieces: list[tuple[int, str]] = []
        start = 0
        for i, ch in enumerate(text + "?"):
            if ch == "?":
                if i > start:
                    pieces.append((start, fold(text[start:i])))
                start = i + 1
        return cls(len(text), tuple(pieces))

    def _anchor(self) -> tuple[int, str] | None:
        return max(self.pieces, key=lambda p: len(p[1])) if self.pieces else None

    def matches_at(self, value: str, start: int, budget: WorkBudget) -> bool:
        if start < 0 or start + self.length > len(value):
            return False
        for offset, text in self.pieces:
            budget.spend(PIECE_COST + len(text))
            if not value.startswith(text, start + offset):
                return False
        return True

    def find(
        self,
        value: str,
        start: int,
        end: int,
        budget: WorkBudget,
        accept: Callable[[int], bool] | None = None,
    ) -> int:
        """The leftmost index >= `start` where the segment matches, ends by
        `end` and is `accept`ed (checked first: it is cheaper), or -1."""
        last = end - self.length
        anchor = self._anchor()
        pos = start
        while pos <= last:
            budget.spend(LOOP_COST)
            if anchor is None:
                candidate = pos
            else:
                offset, text = anchor
                found = value.find(text, pos + offset, last + offset + len(text))
                budget.spend((found if found >= 0 else last + offset + len(text)) - pos - offset)
                if found < 0:
                    return -1
                candidate = found - offset
            if (accept is None or accept(candidate)) and self.matches_at(value, candidate, budget):
                return candidate
            pos = candidate + 1
        return -1


@dataclass(frozen=True, slots=True)
class Glob:
    """A compiled glob; values passed to `matches` must be `fold()`ed."""

    segments: tuple[_Segment, ...]

    @classmethod
    def compile(cls, pattern: str) -> Glob:
        return cls(tuple(_Segment.parse(part) for part in pattern.split("*")))

    @classmethod
    def literal(cls, text: str) -> Glob:
        """Matches `text` itself, `*` and `?` included."""
        return cls((_Segment(len(text), ((0, fold(text)),) if text else ()),))

    def matches(self, value: str, budget: WorkBudget, *, original: str | None = None) -> bool:
        """The whole of `value`, or with `original` (the unfolded value, for
        its word characters) any run of it that starts and ends at a word
        boundary."""
        if original is None:
            return self._matches_whole(value, budget)
        return self._matches_words(value, original, budget)

    def _middle(self, value: str, pos: int, end: int, budget: WorkBudget) -> int:
        """Where the segments between the first and the last end when each
        is placed leftmost from `pos`, or -1."""
        for segment in self.segments[1:-1]:
            found = segment.find(value, pos, end, budget)
            if found < 0:
                return -1
            pos = found + segment.length
        return pos

    def _matches_whole(self, value: str, budget: WorkBudget) -> bool:
        first, last = self.segments[0], self.segments[-1]
        if len(self.segments) == 1:
            return len(value) == first.length and first.matches_at(value, 0, budget)
        if not first.matches_at(value, 0, budget):
            return False
        tail = len(value) - last.length
        if tail < first.length or not last.matches_at(value, tail, budget):
            return False
        return self._middle(value, first.length, tail, budget) >= 0

    def _matches_words(self, value: str, original: str, budget: WorkBudget) -> bool:
        first, last = self.segments[0], self.segments[-1]
        n = len(value)

        def starts_word(i: int) -> bool:
            return i == 0 or not _is_word(original, i - 1)

        def ends_word(j: int) -> bool:
            return j == n or not _is_word(original, j)

        if len(self.segments) == 1:
            return (
                first.find(
                    value,
                    0,
                    n,
                    budget,
                    lambda i: starts_word(i) and ends_word(i + first.length),
                )
                >= 0
            )
        # The earliest start whose first segment fits: later ones only leave
        # less room to what follows.
        found = first.find(value, 0, n, budget, starts_word)
        if found < 0:
            return False
        pos = self._middle(value, found + first.length, n, budget)
        if pos < 0:
            return False
        if not last.pieces:
            # Only `?`s: the run may end at the end of the value.
            return pos + last.length <= n
        # Any place of the last segment from `pos` on will do if it ends a word.
        return last.find(value, pos, n, budget, lambda i: ends_word(i + last.length)) >= 0
