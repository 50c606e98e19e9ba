"""`m.room.server_acl` matching: the spec's order, globs, ports, case, IP literals."""

from __future__ import annotations

import time
from typing import Any
from unittest.mock import patch

import pytest

from hamlet.core.server_acl import ServerAcl, is_ip_literal, strip_port


def acl(**content: Any) -> ServerAcl:
    return ServerAcl.from_content(content)


@pytest.mark.parametrize(
    ("server", "allowed"),
    [
        ("good.example", True),
        ("evil.com", False),
        ("evil.com:8448", False),
        ("evil.com:1234", False),
        ("sub.evil.com", False),
        ("notevil.com", True),
        ("EVIL.COM", False),
        ("Sub.Evil.Com:443", False),
        ("evil.co", True),
        ("a1.bad.org", False),
        ("ab1.bad.org", True),
    ],
)
def test_deny_globs_with_ports_and_case(server: str, allowed: bool) -> None:
    rules = acl(allow=["*"], deny=["evil.com", "*.evil.com", "a?.BAD.org"])
    assert rules.allows(server) is allowed


def test_deny_beats_allow_and_allow_is_required() -> None:
    assert not acl(allow=["*"], deny=["*"]).allows("a.example")
    assert not acl(deny=["other.example"]).allows("a.example")
    assert not acl().allows("a.example")
    only = acl(allow=["*.trusted.org", "friend.example"])
    assert only.allows("hs.trusted.org")
    assert only.allows("friend.example:8448")
    assert not only.allows("trusted.org")
    assert not only.allows("friend.example.evil")


def test_ip_literals() -> None:
    strict = acl(allow=["*"], allow_ip_literals=False)
    for name in ("1.2.3.4", "1.2.3.4:8448", "[::1]", "[2001:db8::1]:8448"):
        assert not strict.allows(name), name
    assert strict.allows("1.2.3.4.example")
    lenient = acl(allow=["*"])
    assert lenient.allows("127.0.0.1:8448")
    # Not a boolean: the default (true).
    assert acl(allow=["*"], allow_ip_literals="no").allows("10.0.0.1")
    # An IP literal is still matched by the globs, without its port.
    assert not acl(allow=["*"], deny=["127.0.0.1"]).allows("127.0.0.1:31337")
    assert acl(allow=["127.0.0.?"]).allows("127.0.0.1:8448")


def test_malformed_content_is_tolerated() -> None:
    assert not acl(allow="*").allows("a.example")
    weird = acl(allow=[1, None, "*", {"x": 1}], deny=[["evil.com"], "bad.example"])
    assert weird.allows("evil.com")
    assert not weird.allows("bad.example")
    # Not a server name at all: denied whenever there is an ACL.
    assert not acl(allow=["*"]).allows("bad name")


def test_strip_port_and_ip_literal() -> None:
    assert strip_port("example.com:8448") == "example.com"
    assert strip_port("[::1]:8448") == "[::1]"
    assert strip_port("not valid!") is None
    assert is_ip_literal("10.1.2.3") and is_ip_literal("[::1]")
    assert not is_ip_literal("10.1.2.3.example")


def test_hostile_patterns_stay_linear() -> None:
    """Thousands of backtracking-prone patterns, long runs of `*`, and
    patterns longer than any server name: cheap, and remembered per server."""
    nasty = [
        "*a" * 60 + "*b",
        "*" * 10_000 + "x",
        "a" * 300 + "*",
        *[f"*a*a*{i}*b" for i in range(3000)],
    ]
    rules = acl(allow=["*"], deny=nasty)
    # Patterns no server name could match are dropped at compile time.
    assert len(rules.deny) == 3002
    name = "a" * 200 + ".example"
    started = time.perf_counter()
    assert rules.allows(name)
    first = time.perf_counter() - started
    assert first < 2.0
    with patch.object(ServerAcl, "_decide", side_effect=AssertionError("decided again")):
        for _ in range(1000):
            assert rules.allows(name)
    assert not rules.allows("a.a7b:8448")
    assert not rules.allows("x" * 200)
