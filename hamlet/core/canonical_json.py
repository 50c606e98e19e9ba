"""Canonical JSON, as defined in the spec appendix.

Keys sorted by code point, no insignificant whitespace, UTF-8 output with only
the mandatory escapes, integers within ``[-(2**53)+1, 2**53-1]`` and no floats.
``orjson`` produces exactly this encoding once the value has been checked
(verified against the appendix examples in the tests); the checking is ours.
"""

from __future__ import annotations

from typing import Any

import orjson

from hamlet.core.errors import CanonicalJsonError

MAX_SAFE_INTEGER = 2**53 - 1
MIN_SAFE_INTEGER = -(2**53) + 1
#: Levels of objects and arrays canonical JSON encodes: all orjson encodes,
#: refused here before the checking recursion gets near Python's.
MAX_DEPTH = 254

JsonDict = dict[str, Any]


def nesting_depth(value: Any, *, stop_above: int) -> int:
    """How many levels of objects and arrays `value` has (a scalar: 0),
    counted without recursion; counting stops once above `stop_above`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > stop_above:
            break
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _normalise(value: Any, *, allow_integral_floats: bool, depth: int = 1) -> Any:
    """Return ``value`` checked for canonical JSON, converting integral floats.

    Raises :class:`CanonicalJsonError` on anything that cannot be encoded.
    """
    if isinstance(value, dict | list | tuple) and depth > MAX_DEPTH:
        raise CanonicalJsonError(f"JSON nested deeper than {MAX_DEPTH} levels")
    if value is None or value is True or value is False or isinstance(value, str):
        return value
    if isinstance(value, int):
        if not MIN_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise CanonicalJsonError(f"integer out of range for canonical JSON: {value}")
        return int(value)
    if isinstance(value, float):
        if allow_integral_floats and value.is_integer():
            return _normalise(int(value), allow_integral_floats=False)
        raise CanonicalJsonError(f"floats are not allowed in canonical JSON: {value!r}")
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalJsonError(f"object keys must be strings, not {type(key).__name__}")
            out[key] = _normalise(
                item, allow_integral_floats=allow_integral_floats, depth=depth + 1
            )
        return out
    if isinstance(value, list | tuple):
        return [
            _normalise(item, allow_integral_floats=allow_integral_floats, depth=depth + 1)
            for item in value
        ]
    raise CanonicalJsonError(f"cannot encode {type(value).__name__} as canonical JSON")


def validate_canonical_json(value: Any) -> None:
    """Check strictly that ``value`` is canonical-JSON-safe (no floats at all).

    Use this on event content received from clients: a float such as ``1.0``
    in an event is refused rather than silently rewritten.
    """
    _normalise(value, allow_integral_floats=False)


def encode_canonical_json(value: Any) -> bytes:
    """Encode ``value`` as canonical JSON bytes.

    Integral floats (``1e10``, ``-0.0``) are written as integers, as the spec's
    examples require; any other float, an out-of-range integer, a non-string
    key or a lone surrogate raises :class:`CanonicalJsonError`.
    """
    checked = _normalise(value, allow_integral_floats=True)
    try:
        return orjson.dumps(checked, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:  # e.g. lone surrogates
        raise CanonicalJsonError(str(exc)) from exc


def decode_json(data: bytes | str) -> Any:
    """Parse JSON text (not necessarily canonical). Raises :class:`CanonicalJsonError`."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CanonicalJsonError(f"invalid JSON: {exc}") from exc
