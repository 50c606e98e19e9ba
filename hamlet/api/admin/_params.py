"""Query and body parameters shared by the admin endpoints."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.handlers.common.errors import InvalidParamError


def offset_and_limit(req: ApiRequest, default_limit: int = 100) -> tuple[int, int]:
    start = req.query_int("from", 0)
    limit = req.query_int("limit", default_limit)
    assert start is not None and limit is not None
    if start < 0:
        raise InvalidParamError(
            "Query parameter from must be a string representing a positive integer."
        )
    if limit < 0:
        raise InvalidParamError(
            "Query parameter limit must be a string representing a positive integer."
        )
    return start, limit


def direction(req: ApiRequest, default: str) -> str:
    value = req.query.get("dir", default)
    if value not in ("f", "b"):
        raise InvalidParamError("Unknown direction")
    return value


def optional_bool(req: ApiRequest, name: str) -> bool | None:
    if name not in req.query:
        return None
    return req.query_bool(name)


def optional_int(body: dict[str, Any], name: str, *, minimum: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParamError(f"'{name}' parameter must be an integer")
    if minimum is not None and value < minimum:
        raise InvalidParamError(f"'{name}' parameter must be at least {minimum}")
    return value
