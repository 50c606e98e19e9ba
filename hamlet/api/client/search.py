"""`POST /search`: server-side full-text search over room events."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.search.params import BatchToken, parse_search_request


async def search(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    batch = req.query.get("next_batch")
    return await req.hs.search.search(
        requester.user_id,
        requester.device_id,
        parse_search_request(await req.json_object()),
        BatchToken.decode(batch) if batch else None,
    )


def register(router: Router) -> None:
    router.add_client("POST", "/search", search)
