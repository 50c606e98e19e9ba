"""Exceptions raised by the pure protocol layer.

The HTTP layer maps these onto Matrix errors; nothing here knows about HTTP.
"""

from __future__ import annotations


class CoreError(Exception):
    """Base class for errors raised by :mod:`hamlet.core`."""


class EventAuthError(CoreError):
    """An event is not allowed by the room's authorization rules (not an HTTP 401)."""


class EventFormatError(CoreError):
    """An event (or other protocol object) has a bad shape or content."""


class EventTooLargeError(EventFormatError):
    """An event exceeds one of the spec's size limits."""


class CanonicalJsonError(EventFormatError):
    """A value cannot be represented as canonical JSON."""


class SignatureError(CoreError):
    """A signature is missing, malformed or does not verify."""


class InvalidIdError(EventFormatError):
    """A Matrix identifier (user, room, alias, event ID) is malformed."""


class FilterError(EventFormatError):
    """A filter definition is malformed."""


class UnsupportedRoomVersionError(EventFormatError):
    """The room version is not one this server implements."""
