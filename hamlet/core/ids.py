"""Matrix identifiers: user IDs, room IDs, room aliases, event IDs, server names."""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass
from typing import ClassVar, Self

from hamlet.core.errors import InvalidIdError

MAX_ID_LENGTH = 255  # bytes, including sigil and domain

_IPV4_RE = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
_IPV6_RE = re.compile(r"^\[[0-9A-Fa-f:.]{2,45}\]$")
_DNS_RE = re.compile(r"^[A-Za-z0-9.-]{1,255}$")
_PORT_RE = re.compile(r"^\d{1,5}$")
_STRICT_LOCALPART_RE = re.compile(r"^[a-z0-9._=\-/+]+$")


def parse_server_name(server_name: str) -> tuple[str, int | None]:
    """Split a server name into host and optional port; raise if malformed."""
    if server_name.startswith("["):
        end = server_name.find("]")
        if end == -1:
            raise InvalidIdError(f"invalid server name {server_name!r}")
        host, rest = server_name[: end + 1], server_name[end + 1 :]
        if rest and not rest.startswith(":"):
            raise InvalidIdError(f"invalid server name {server_name!r}")
        port_str = rest[1:] if rest else None
    else:
        host, sep, port_part = server_name.partition(":")
        port_str = port_part if sep else None
    if port_str is not None and not _PORT_RE.match(port_str):
        raise InvalidIdError(f"invalid port in server name {server_name!r}")
    if host.startswith("["):
        valid = bool(_IPV6_RE.match(host))
    elif _IPV4_RE.match(host):
        valid = all(0 <= int(part) <= 255 for part in host.split("."))
    else:
        valid = bool(_DNS_RE.match(host))
    if not valid:
        raise InvalidIdError(f"invalid server name {server_name!r}")
    return host, int(port_str) if port_str is not None else None


def is_valid_server_name(server_name: str) -> bool:
    """True if ``server_name`` matches the spec's server name grammar."""
    try:
        parse_server_name(server_name)
    except InvalidIdError:
        return False
    return True


def is_valid_localpart(localpart: str) -> bool:
    """The strict (v1.8+) user ID localpart grammar: ``[a-z0-9._=\\-/+]+``."""
    return bool(_STRICT_LOCALPART_RE.match(localpart))


def is_valid_historical_localpart(localpart: str) -> bool:
    """Historical localparts: any non-surrogate code points except ``:`` and NUL."""
    return (
        ":" not in localpart
        and "\x00" not in localpart
        and not any(0xD800 <= ord(c) <= 0xDFFF for c in localpart)
    )


def get_domain_from_id(identifier: str) -> str:
    """The part after the first ``:`` of a sigilled ID; raises if there is none."""
    _, sep, domain = identifier.partition(":")
    if not sep or not domain:
        raise InvalidIdError(f"ID has no domain: {identifier!r}")
    return domain


def _byte_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True, slots=True)
class _DomainSpecificId:
    """``<sigil><localpart>:<domain>``."""

    SIGIL: ClassVar[str] = ""

    localpart: str
    domain: str

    @classmethod
    def from_string(cls, text: str) -> Self:
        """Parse and validate; raises :class:`InvalidIdError`."""
        if not text.startswith(cls.SIGIL):
            raise InvalidIdError(f"expected {cls.SIGIL!r} sigil in {text!r}")
        localpart, sep, domain = text[1:].partition(":")
        if not sep:
            raise InvalidIdError(f"{text!r} has no domain")
        if _byte_len(text) > MAX_ID_LENGTH:
            raise InvalidIdError(f"{text[:40]!r}... is longer than {MAX_ID_LENGTH} bytes")
        if not is_valid_historical_localpart(localpart):
            raise InvalidIdError(f"invalid localpart in {text!r}")
        parse_server_name(domain)
        return cls(localpart, domain)

    @classmethod
    def is_valid(cls, text: str) -> bool:
        """True if ``text`` parses."""
        try:
            cls.from_string(text)
        except InvalidIdError:
            return False
        return True

    def to_string(self) -> str:
        """The sigilled string form."""
        return f"{self.SIGIL}{self.localpart}:{self.domain}"

    def __str__(self) -> str:
        return self.to_string()


@dataclass(frozen=True, slots=True)
class UserID(_DomainSpecificId):
    """``@localpart:domain``. Historical localparts are accepted by ``from_string``."""

    SIGIL: ClassVar[str] = "@"

    def is_strictly_valid(self) -> bool:
        """True if the localpart follows the current strict grammar."""
        return is_valid_localpart(self.localpart)


@dataclass(frozen=True, slots=True)
class RoomID(_DomainSpecificId):
    """``!opaque:domain`` (room versions up to 11)."""

    SIGIL: ClassVar[str] = "!"


@dataclass(frozen=True, slots=True)
class RoomAlias(_DomainSpecificId):
    """``#alias:domain``."""

    SIGIL: ClassVar[str] = "#"


def is_valid_event_id(event_id: str) -> bool:
    """``$`` followed by something, at most 255 bytes."""
    return event_id.startswith("$") and len(event_id) > 1 and _byte_len(event_id) <= MAX_ID_LENGTH


def is_room_id(text: str) -> bool:
    """``!`` and something, at most 255 bytes: ``!opaque:domain`` before room
    version 12, ``!`` and the create event's hash (no domain) from it."""
    return text.startswith("!") and len(text) > 1 and _byte_len(text) <= MAX_ID_LENGTH


def is_valid_user_id(user_id: str, *, strict: bool = False) -> bool:
    """True if ``user_id`` parses; ``strict`` also requires the v1.8 localpart grammar."""
    try:
        parsed = UserID.from_string(user_id)
    except InvalidIdError:
        return False
    return parsed.is_strictly_valid() if strict else True


def generate_room_id(server_name: str, length: int = 18) -> str:
    """A random room ID like Synapse's: ``!`` + 18 ASCII letters + ``:server_name``."""
    letters = string.ascii_letters
    return "!" + "".join(secrets.choice(letters) for _ in range(length)) + ":" + server_name
