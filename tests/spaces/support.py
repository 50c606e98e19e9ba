"""Shared bits of the spaces and admin-rooms tests: a generous homeserver and space helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.rooms.helpers import V3, create_room, put_state, q
from tests.support.harness import Harness, Response, start_harness
from tests.support.users import TestUser

V1_CLIENT = "/_matrix/client/v1"
ADMIN_V1 = "/_synapse/admin/v1"
ADMIN_V2 = "/_synapse/admin/v2"

GENEROUS = {"per_second": 1000, "burst_count": 1000}
LIMITS: dict[str, Any] = {
    "rc_message": GENEROUS,
    "rc_joins": {"local": GENEROUS, "remote": GENEROUS},
    "rc_joins_per_room": GENEROUS,
    "rc_invites": {"per_room": GENEROUS, "per_user": GENEROUS, "per_issuer": GENEROUS},
}


@pytest.fixture
async def sh(make_hs_config) -> AsyncIterator[Harness]:  # type: ignore[no-untyped-def]
    """One homeserver with generous rate limits."""
    harness = await start_harness([make_hs_config(**LIMITS)])
    yield harness
    await harness.close()


def ok(resp: Response) -> Any:
    assert resp.status == 200, (resp.status, resp.body)
    return resp.json


async def create_space(h: Harness, user: TestUser, name: str, **body: Any) -> str:
    body.setdefault("preset", "public_chat")
    creation = dict(body.pop("creation_content", {}))
    creation["type"] = "m.space"
    return await create_room(h, user, name=name, creation_content=creation, **body)


async def add_child(
    h: Harness,
    user: TestUser,
    parent: str,
    child: str,
    *,
    order: str | None = None,
    suggested: bool | None = None,
    via: Any = None,
) -> None:
    content: dict[str, Any] = {"via": via if via is not None else ["test.local"]}
    if order is not None:
        content["order"] = order
    if suggested is not None:
        content["suggested"] = suggested
    ok(await put_state(h, user, parent, "m.space.child", content, child))


async def hierarchy(
    h: Harness,
    user: TestUser,
    room_id: str,
    *,
    admin: bool = False,
    from_token: str | None = None,
    **params: Any,
) -> Response:
    if from_token is not None:
        params["from"] = from_token
    base = f"{ADMIN_V1}/rooms/{q(room_id)}" if admin else f"{V1_CLIENT}/rooms/{q(room_id)}"
    query = "&".join(
        f"{k}={str(v).lower() if isinstance(v, bool) else q(str(v))}" for k, v in params.items()
    )
    return await h.request(
        "GET", f"{base}/hierarchy" + (f"?{query}" if query else ""), token=user.token
    )


async def walk_pages(
    h: Harness, user: TestUser, room_id: str, *, admin: bool = False, **params: Any
) -> list[list[str]]:
    """Every page's room IDs, following next_batch to the end."""
    pages: list[list[str]] = []
    token: str | None = None
    while True:
        body = ok(await hierarchy(h, user, room_id, admin=admin, from_token=token, **params))
        pages.append([r["room_id"] for r in body["rooms"]])
        token = body.get("next_batch")
        if token is None:
            return pages
        assert len(pages) < 50


__all__ = ["V3", "create_room", "put_state", "q"]
