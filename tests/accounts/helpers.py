"""Registering and logging in over HTTP, for the account tests."""

from __future__ import annotations

from typing import Any

from tests.support.harness import Harness, Response

V3 = "/_matrix/client/v3"


def assert_error(resp: Response, status: int, errcode: str) -> None:
    assert resp.status == status, (resp.status, resp.body)
    assert resp.json["errcode"] == errcode, resp.json
    assert isinstance(resp.json["error"], str)


async def register(
    h: Harness,
    username: str | None,
    password: str = "correct horse",
    *,
    host: str | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {"password": password, "auth": {"type": "m.login.dummy"}, **extra}
    if username is not None:
        body["username"] = username
    return await h.request("POST", f"{V3}/register", json=body, host=host)


async def register_ok(
    h: Harness, username: str, password: str = "correct horse", *, host: str | None = None
) -> dict[str, Any]:
    resp = await register(h, username, password, host=host)
    assert resp.status == 200, resp.body
    result: dict[str, Any] = resp.json
    return result


async def login(
    h: Harness, user: str, password: str, *, host: str | None = None, **extra: Any
) -> Response:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
        **extra,
    }
    return await h.request("POST", f"{V3}/login", json=body, host=host)


def password_auth(user_id: str, password: str, session: str | None = None) -> dict[str, Any]:
    auth: dict[str, Any] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user_id},
        "password": password,
    }
    if session is not None:
        auth["session"] = session
    return auth


async def whoami(h: Harness, token: str, *, host: str | None = None) -> Response:
    return await h.request("GET", f"{V3}/account/whoami", token=token, host=host)
