"""Every admin route refuses non-admins (403) and anonymous callers (401).

The route list comes from the real route table, so a route added later
cannot forget the check without failing here.
"""

# ruff: noqa: F811  (fixtures imported from users_support)
from __future__ import annotations

import re

import pytest

from hamlet.api.admin.auth import (
    PUBLIC_ADMIN_ROUTES,
    admin_routes,
    protected_admin_routes,
)
from hamlet.api.router import _PARAM, Route
from hamlet.api.routes import build_router
from tests.admin.users_support import V1, V2, admin, ah, alice, assert_error, ok  # noqa: F401
from tests.support.harness import Harness, RecordingHandler
from tests.support.users import TestUser, make_user

ROUTER = build_router()
PROTECTED = protected_admin_routes(ROUTER)

# A value for each kind of path parameter; for `{name:regex}` parameters the
# first candidate the regex accepts is used.
_DUMMIES = {
    "userId": "@bob:test.local",
    "user_id": "@bob:test.local",
    "roomId": "!nowhere:test.local",
    "room_id": "!nowhere:test.local",
    "roomIdOrAlias": "!nowhere:test.local",
    "eventId": "$nothing",
    "deviceId": "DEVICE",
    "token": "sometoken",
    "reportId": "1",
    "txnId": "txn1",
}
_CANDIDATES = ["x", "1", "@bob:test.local", "!nowhere:test.local", "$nothing"]


def concrete_path(route: Route) -> str:
    def fill(m: re.Match[str]) -> str:
        name, sub = m.group(1), m.group(2)
        value = _DUMMIES.get(name, "x")
        if sub and not re.fullmatch(sub, value):
            value = next(c for c in _CANDIDATES if re.fullmatch(sub, c))
        return value

    path = _PARAM.sub(fill, route.pattern)
    assert route.regex.match(path), (route.pattern, path)
    return path


def test_the_route_table_has_the_admin_routes() -> None:
    patterns = {(r.method, r.pattern) for r in admin_routes(ROUTER)}
    assert PUBLIC_ADMIN_ROUTES <= patterns
    for expected in [
        ("GET", f"{V2}/users"),
        ("GET", "/_synapse/admin/v3/users"),
        ("PUT", f"{V2}/users/{{userId}}"),
        ("POST", f"{V1}/deactivate/{{userId}}"),
        ("POST", f"{V1}/registration_tokens/new"),
        ("GET", f"{V1}/event_reports"),
        ("POST", f"{V1}/send_server_notice"),
        ("POST", f"{V1}/users/{{userId}}/override_ratelimit"),
    ]:
        assert expected in patterns
    assert len(PROTECTED) >= 30


@pytest.mark.parametrize("route", PROTECTED, ids=[f"{r.method} {r.pattern}" for r in PROTECTED])
async def test_admin_route_refuses_non_admins(
    ah: Harness,
    alice: TestUser,
    route: Route,
) -> None:
    path = concrete_path(route)
    body = {} if route.method in ("POST", "PUT") else None
    resp = await ah.request(route.method, path, json=body, token=alice.token)
    assert_error(resp, 403, "M_FORBIDDEN")
    assert resp.json["error"] == "You are not a server admin"
    resp = await ah.request(route.method, path, json=body)
    assert_error(resp, 401, "M_MISSING_TOKEN")
    resp = await ah.request(route.method, path, json=body, token="syt_bogus_token")
    assert_error(resp, 401, "M_UNKNOWN_TOKEN")


async def test_public_admin_routes_need_no_token(ah: Harness) -> None:
    version = ok(await ah.request("GET", f"{V1}/server_version"))
    assert isinstance(version["server_version"], str)
    nonce = ok(await ah.request("GET", f"{V1}/register"))
    assert nonce["nonce"]


async def test_admin_actions_are_logged_under_the_request(
    ah: Harness,
    admin: TestUser,
    log_records: RecordingHandler,
) -> None:
    await make_user(ah, "carol")
    ok(await ah.request("GET", f"{V2}/users/@carol:test.local", token=admin.token))
    lines = log_records.matching("Admin @admin:test.local")
    assert lines, [r.getMessage() for r in log_records.records]
    record = lines[-1]
    assert "GET /_synapse/admin/v2/users/@carol:test.local" in record.getMessage()
    assert record.levelname == "INFO"
    assert getattr(record, "request", "sentinel").startswith("GET-")
    assert getattr(record, "server_name", None) == "test.local"
