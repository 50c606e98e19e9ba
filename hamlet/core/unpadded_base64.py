"""Unpadded base64 (standard and URL-safe), per the spec appendix."""

from __future__ import annotations

import base64 as _b64
import binascii

from hamlet.core.errors import EventFormatError


def encode_base64(data: bytes) -> str:
    """Standard-alphabet base64 without ``=`` padding."""
    return _b64.b64encode(data).decode("ascii").rstrip("=")


def encode_base64_urlsafe(data: bytes) -> str:
    """URL-safe-alphabet base64 (``-`` and ``_``) without ``=`` padding."""
    return _b64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def decode_base64(text: str) -> bytes:
    """Decode base64 with or without padding, in either alphabet.

    Raises :class:`EventFormatError` on malformed input.
    """
    stripped = text.rstrip("=")
    if len(stripped) % 4 == 1:
        raise EventFormatError("invalid base64 length")
    padded = stripped + "=" * (-len(stripped) % 4)
    try:
        if "-" in padded or "_" in padded:
            if "+" in padded or "/" in padded:
                raise EventFormatError("invalid base64: mixed alphabets")
            padded = padded.replace("-", "+").replace("_", "/")
        return _b64.b64decode(padded.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise EventFormatError(f"invalid base64: {exc}") from exc
