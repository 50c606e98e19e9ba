"""Helpers for the sliding sync tests: one request over HTTP."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.support.harness import Harness, Response
from tests.support.users import TestUser

SS = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
ALL = {"ranges": [[0, 19]], "timeline_limit": 5, "required_state": [["m.room.create", ""]]}


async def slide(
    h: Harness, user: TestUser, req: Any, pos: str | None = None, wait_ms: int | None = None
) -> Response:
    query = []
    if pos is not None:
        query.append(f"pos={quote(pos)}")
    if wait_ms is not None:
        query.append(f"timeout={wait_ms}")
    path = SS + ("?" + "&".join(query) if query else "")
    return await h.request("POST", path, json=req, token=user.token)
