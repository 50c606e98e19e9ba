"""`POST /user_directory/search`."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.accounts.user_directory import DEFAULT_LIMIT, MAX_LIMIT
from hamlet.handlers.common.errors import BadJsonError, MissingParamError


async def search(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object()
    term = body.get("search_term")
    if term is None:
        raise MissingParamError("Missing search_term")
    if not isinstance(term, str):
        raise BadJsonError("search_term must be a string")
    limit = body.get("limit", DEFAULT_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise BadJsonError("limit must be a non-negative integer")
    return await req.hs.user_directory.search(requester.user_id, term, min(limit, MAX_LIMIT))


def register(router: Router) -> None:
    router.add_client("POST", "/user_directory/search", search)
