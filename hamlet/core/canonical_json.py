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

JsonDict = dict[str, Any]


def _normalise(value: Any, *, allow_integral_floats: bool) -> Any:
    """Return ``value`` checked for canonical JSON, converting integral floats.

    Raises :class:`CanonicalJsonError` on anything that cannot be encoded.
    """
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
            out[key] = _normalise(item, allow_integral_floats=allow_integral_floats)
        return out
    if isinstance(value, list | tuple):
        return [_normalise(item, allow_integral_floats=allow_integral_floats) for item in value]
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
