"""A small typed reader over raw YAML mappings that collects every error.

Each :class:`Section` wraps one mapping and knows its key path. Getters
return a typed value (or the default after recording an error), so a whole
config can be read in one pass and all problems reported together. Keys a
section never reads are reported as unknown-key warnings by
:meth:`Context.finish`.

A key explicitly set to ``null`` is treated as absent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}

_DURATION_RE = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w|y)?\s*$")
_DURATION_UNITS = {
    None: 1,
    "ms": 1,
    "s": 1000,
    "m": 60 * 1000,
    "h": 60 * 60 * 1000,
    "d": 24 * 60 * 60 * 1000,
    "w": 7 * 24 * 60 * 60 * 1000,
    "y": 365 * 24 * 60 * 60 * 1000,
}


class Invalid(Exception):
    """Raised by a converter; the message says what is wrong with the value."""


def parse_size(value: Any) -> int:
    """Bytes from an int or a string like ``10K``, ``50M``, ``1G`` (powers of 1024)."""
    if isinstance(value, bool):
        raise Invalid("must be a size in bytes (an integer, or a string like '50M')")
    if isinstance(value, int):
        if value < 0:
            raise Invalid("must not be negative")
        return value
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m:
            return int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
        raise Invalid(f"invalid size {value!r} (expected e.g. 1048576, '10K', '50M' or '1G')")
    raise Invalid("must be a size in bytes (an integer, or a string like '50M')")


def parse_duration_ms(value: Any) -> int:
    """Milliseconds from an int (already ms) or a string like ``30s``, ``24h``, ``7d``."""
    if isinstance(value, bool):
        raise Invalid("must be a duration (milliseconds, or a string like '24h')")
    if isinstance(value, int):
        if value < 0:
            raise Invalid("must not be negative")
        return value
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            return int(m.group(1)) * _DURATION_UNITS[m.group(2)]
        raise Invalid(f"invalid duration {value!r} (expected e.g. 60000, '30s', '24h' or '7d')")
    raise Invalid("must be a duration (milliseconds, or a string like '24h')")


class Context:
    """Collects errors and warnings across all sections of one config."""

    def __init__(self, config_dir: Path) -> None:
        self.config_dir = config_dir
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self._sections: list[Section] = []

    def root(self, raw: Mapping[str, Any]) -> Section:
        return self.section(raw, "")

    def section(self, raw: Mapping[Any, Any], path: str) -> Section:
        s = Section(self, raw, path)
        self._sections.append(s)
        return s

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def finish(self) -> None:
        """Warn about every key no section read."""
        for s in self._sections:
            for key in s.raw:
                if key not in s.seen:
                    self.warnings.append(f"unknown key '{s.key_path(str(key))}'")


class Section:
    def __init__(self, ctx: Context, raw: Mapping[Any, Any], path: str) -> None:
        self.ctx = ctx
        self.raw = raw
        self.path = path
        self.seen: set[Any] = set()

    # -- plumbing ---------------------------------------------------------

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> None:
        self.ctx.error(self.key_path(key), message)

    def has(self, key: str) -> bool:
        return self.raw.get(key) is not None

    def warn(self, key: str, message: str) -> None:
        """A value that is valid but most likely not what was meant."""
        self.ctx.warnings.append(f"'{self.key_path(key)}': {message}")

    def unsupported(self, key: str, why: str) -> None:
        """Warn that ``key`` is read but changes nothing (yet), and why."""
        self.ctx.warnings.append(f"unsupported key '{self.key_path(key)}' has no effect: {why}")

    def ignore(self, *keys: str) -> None:
        """Accept these keys silently without using them."""
        self.seen.update(keys)

    def value(self, key: str) -> Any:
        self.seen.add(key)
        return self.raw.get(key)

    def get(self, key: str, default: T, convert: Callable[[Any], T]) -> T:
        """Convert the value at ``key``; on absence or error, return ``default``."""
        raw = self.value(key)
        if raw is None:
            return default
        try:
            return convert(raw)
        except Invalid as e:
            self.error(key, str(e))
            return default

    def require(self, key: str, convert: Callable[[Any], T]) -> T | None:
        """Like :meth:`get` but a missing key is an error; returns None on any error."""
        if not self.has(key):
            self.value(key)
            self.error(key, "missing required key")
            return None
        return self.get(key, None, convert)

    # -- typed getters ----------------------------------------------------

    def str_(self, key: str, default: str) -> str:
        return self.get(key, default, to_str)

    def opt_str(self, key: str) -> str | None:
        return self.get(key, None, to_str)

    def bool_(self, key: str, default: bool) -> bool:
        return self.get(key, default, to_bool)

    def int_(self, key: str, default: int, lo: int | None = None, hi: int | None = None) -> int:
        return self.get(key, default, int_range(lo, hi))

    def opt_int(self, key: str, lo: int | None = None, hi: int | None = None) -> int | None:
        return self.get(key, None, int_range(lo, hi))

    def number(self, key: str, default: float) -> float:
        return self.get(key, default, to_non_negative_number)

    def size(self, key: str, default: int) -> int:
        return self.get(key, default, parse_size)

    def opt_size(self, key: str) -> int | None:
        return self.get(key, None, parse_size)

    def path_(self, key: str, default: Path) -> Path:
        return self.get(key, default, self._to_path)

    def opt_path(self, key: str) -> Path | None:
        return self.get(key, None, self._to_path)

    def str_list(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        return self.get(key, default, to_str_tuple)

    def _to_path(self, value: Any) -> Path:
        return resolve_path(self.ctx.config_dir, to_str(value))

    # -- nesting ----------------------------------------------------------

    def section(self, key: str) -> Section | None:
        """The mapping at ``key`` as a sub-section; None if absent or not a mapping."""
        raw = self.value(key)
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            self.error(key, "must be a mapping")
            return None
        return self.ctx.section(raw, self.key_path(key))

    def section_list(self, key: str) -> list[Section] | None:
        """The list of mappings at ``key``; None if absent or not a list."""
        raw = self.value(key)
        if raw is None:
            return None
        if not isinstance(raw, list):
            self.error(key, "must be a list")
            return None
        out: list[Section] = []
        for i, item in enumerate(raw):
            item_path = f"{self.key_path(key)}[{i}]"
            if not isinstance(item, Mapping):
                self.ctx.error(item_path, "must be a mapping")
                continue
            out.append(self.ctx.section(item, item_path))
        return out


# -- converters -------------------------------------------------------------


def to_str(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("must be a string")
    return value


def to_non_empty_str(value: Any) -> str:
    s = to_str(value)
    if not s.strip():
        raise Invalid("must not be empty")
    return s


def to_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("must be a boolean (true or false)")
    return value


def int_range(lo: int | None, hi: int | None) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        in_range = (
            isinstance(value, int)
            and not isinstance(value, bool)
            and (lo is None or value >= lo)
            and (hi is None or value <= hi)
        )
        if in_range:
            assert isinstance(value, int)
            return value
        if lo is not None and hi is not None:
            raise Invalid(f"must be an integer between {lo} and {hi}")
        if lo is not None:
            raise Invalid(f"must be an integer >= {lo}")
        if hi is not None:
            raise Invalid(f"must be an integer <= {hi}")
        raise Invalid("must be an integer")

    return convert


def to_non_negative_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid("must be a number")
    if not math.isfinite(value) or value < 0:
        raise Invalid("must be a finite number >= 0")
    return float(value)


def to_str_tuple(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise Invalid("must be a list of strings")
    bad = [i for i, v in enumerate(value) if not isinstance(v, str)]
    if bad:
        raise Invalid(f"must be a list of strings (item {bad[0]} is not a string)")
    return tuple(value)


def resolve_path(base: Path, value: str) -> Path:
    if not value.strip():
        raise Invalid("must not be empty")
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p
