"""Small helpers shared by the account API modules: typed body fields, UIA keys."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import CLIENT_PREFIXES
from hamlet.handlers.common.errors import BadJsonError, MissingParamError


def uia_request_key(req: ApiRequest) -> str:
    """Method and path (without the version prefix): what a UIA session is bound to."""
    path = req.http.path
    for prefix in CLIENT_PREFIXES:
        if path.startswith(prefix):
            path = path[len(prefix) :]
            break
    return f"{req.method} {path}"


def opt_str(body: dict[str, Any], name: str, *, max_length: int = 512) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise BadJsonError(f"'{name}' must be a string")
    return value


def req_str(body: dict[str, Any], name: str, *, max_length: int = 512) -> str:
    value = opt_str(body, name, max_length=max_length)
    if value is None:
        raise MissingParamError(f"Missing param: {name}")
    return value


def opt_bool(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise BadJsonError(f"'{name}' must be a boolean")
    return value
