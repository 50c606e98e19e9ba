"""Every route, fed nonsense, answers with a Matrix error and never a 500."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hamlet.api.routes import build_router
from tests.support.harness import Harness, make_config, start_harness
from tests.support.users import make_user

# Values for path parameters: plausible-but-unknown, and plainly malformed.
PARAMS = {
    "roomId": ["!unknown:test.local", "nonsense"],
    "roomIdOrAlias": ["#nope:test.local", "!unknown:test.local", "garbage"],
    "roomAlias": ["#nope:test.local", "garbage"],
    "userId": ["@ghost:test.local", "not-a-user"],
    "eventId": ["$unknown", "garbage"],
    "txnId": ["t1"],
    "eventType": ["m.room.message", "m.room.member"],
    "stateKey": ["", "@ghost:test.local"],
    "deviceId": ["NODEVICE"],
    "filterId": ["999", "abc"],
    "tag": ["u.work"],
    "type": ["m.direct"],
    "relType": ["m.thread"],
    "kind": ["override", "bogus"],
    "ruleId": ["nope", ".m.rule.master"],
    "scope": ["global", "device"],
    "receiptType": ["m.read", "m.bogus"],
    "token": ["nosuchtoken"],
    "deleteId": ["nope"],
    "reportId": ["12345", "abc"],
}
BODIES: list[Any] = [None, b"not json", b"[1, 2]", b"{}", b'{"a": {"b": [null, 1.5, "x"]}}']


def _routes() -> list[tuple[str, str]]:
    out = []
    for route in build_router().routes():
        if route.pattern.startswith("/_matrix/client/r0"):
            continue  # the same handlers as v3
        out.append((route.method, route.pattern))
    return out


def _paths(pattern: str) -> list[str]:
    names = re.findall(r"\{(\w+)(?::[^}]+)?\}", pattern)
    paths = [pattern]
    for name in names:
        values = PARAMS.get(name, ["x"])
        expanded = []
        for path in paths:
            for value in values:
                expanded.append(
                    re.sub(
                        r"\{" + name + r"(?::[^}]+)?\}", value.replace("#", "%23"), path, count=1
                    )
                )
        paths = expanded
    return paths[:6]


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    # Input handling does not depend on the storage engine: SQLite only.
    config = make_config(
        tmp_path, "sqlite", None, server_notices={"system_mxid_localpart": "notices"}
    )
    harness = await start_harness([config])
    yield harness
    await harness.close()


@pytest.mark.parametrize(("method", "pattern"), _routes())
async def test_route_never_answers_500(h: Harness, method: str, pattern: str) -> None:
    admin = await make_user(h, "admin", admin=True)
    for path in _paths(pattern):
        for token in (None, admin.token):
            for body in BODIES if method in ("POST", "PUT") else [None]:
                resp = await h.request(method, path, body=body, token=token)
                assert resp.status != 500, (method, path, body, resp.body[:300])
                if resp.status >= 400 and resp.headers.get("Content-Type", "").startswith(
                    "application/json"
                ):
                    body_json = resp.json
                    if "flows" in body_json:
                        continue  # a User-Interactive Auth challenge, not an error
                    assert "errcode" in body_json and "error" in body_json, (method, path)
