"""`m.room.server_acl`: which servers may take part in a room.

The spec's order: an IP-literal server name is denied when
`allow_ip_literals` is false; then a name matching a `deny` glob is
denied; then one matching an `allow` glob is allowed; anything else is
denied. Globs know `*` and `?`, match the whole name case-insensitively,
and the name's port is never considered. A missing or non-list `allow` or
`deny` is empty (so an ACL without `allow` denies everyone), a
non-boolean `allow_ip_literals` is true, and non-string entries are
ignored (as Synapse).

The content comes from whoever may send the state event, so matching must
stay cheap whatever it holds: an ACL is compiled once (duplicate patterns
dropped, runs of `*` collapsed, patterns that need more characters than a
server name can have dropped), each glob is matched without backtracking
(`core/glob.py`), and each server's answer is remembered, so an ACL with
thousands of patterns costs one pass per server, not per request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from hamlet.core.errors import InvalidIdError
from hamlet.core.glob import BudgetExhaustedError, Glob, WorkBudget, fold
from hamlet.core.ids import parse_server_name

SERVER_ACL: Final = "m.room.server_acl"
#: A server name's host is at most this long (the spec's grammar).
MAX_HOST_LENGTH: Final = 255
#: Servers whose answer one compiled ACL remembers.
MAX_REMEMBERED: Final = 1024
#: Steps one pattern may take against one name: far more than a linear
#: match of 255 characters needs, so only a bug would run out.
PATTERN_BUDGET: Final = 1_000_000

_STARS: Final = re.compile(r"\*+")
_IPV4: Final = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def _compile(patterns: Any) -> tuple[Glob, ...]:
    if not isinstance(patterns, list):
        return ()
    unique = dict.fromkeys(_STARS.sub("*", p) for p in patterns if isinstance(p, str))
    return tuple(Glob.compile(p) for p in unique if len(p) - p.count("*") <= MAX_HOST_LENGTH)


def _matches_any(globs: Iterable[Glob], host: str, *, when_unsure: bool) -> bool:
    for glob in globs:
        try:
            if glob.matches(host, WorkBudget(PATTERN_BUDGET)):
                return True
        except BudgetExhaustedError:
            if when_unsure:
                return True
    return False


def strip_port(server_name: str) -> str | None:
    """The host part of `server_name` (an IPv6 literal keeps its brackets);
    None if it is not a valid server name."""
    try:
        host, _port = parse_server_name(server_name)
    except InvalidIdError:
        return None
    return host


def is_ip_literal(host: str) -> bool:
    return host.startswith("[") or _IPV4.match(host) is not None


class ServerAcl:
    """One `m.room.server_acl` content, compiled."""

    __slots__ = ("_answers", "allow", "allow_ip_literals", "deny")

    def __init__(self, allow: tuple[Glob, ...], deny: tuple[Glob, ...], allow_ip_literals: bool):
        self.allow = allow
        self.deny = deny
        self.allow_ip_literals = allow_ip_literals
        self._answers: dict[str, bool] = {}

    @classmethod
    def from_content(cls, content: Mapping[str, Any]) -> ServerAcl:
        literals = content.get("allow_ip_literals", True)
        return cls(
            _compile(content.get("allow")),
            _compile(content.get("deny")),
            literals if isinstance(literals, bool) else True,
        )

    def allows(self, server_name: str) -> bool:
        host = strip_port(server_name)
        if host is None:
            return False
        host = fold(host)
        answer = self._answers.get(host)
        if answer is None:
            answer = self._decide(host)
            if len(self._answers) >= MAX_REMEMBERED:
                self._answers.clear()
            self._answers[host] = answer
        return answer

    def _decide(self, host: str) -> bool:
        if not self.allow_ip_literals and is_ip_literal(host):
            return False
        # A pattern that could not be decided counts against the server.
        if _matches_any(self.deny, host, when_unsure=True):
            return False
        return _matches_any(self.allow, host, when_unsure=False)
