"""The HTTP front door: error shapes, CORS, prefixes, discovery and the access log."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hamlet import __version__
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.api.routes import build_router
from hamlet.config import HomeServerConfig
from hamlet.handlers.common.errors import LimitExceededError
from tests.support.harness import Harness, RecordingHandler, start_harness

MakeConfig = Callable[..., HomeServerConfig]
logger = logging.getLogger(__name__)

BODY_LIMIT = 1024


async def echo(req: ApiRequest) -> dict[str, Any]:
    return {"got": await req.json_object(), "params": req.params}


async def fails(req: ApiRequest) -> dict[str, Any]:
    logger.info("about to fail")
    raise RuntimeError("secret internal detail")


async def limited(req: ApiRequest) -> dict[str, Any]:
    raise LimitExceededError(1500)


async def query(req: ApiRequest) -> dict[str, Any]:
    return {"limit": req.query_int("limit", 10), "full": req.query_bool("full")}


async def created(req: ApiRequest) -> tuple[int, dict[str, Any]]:
    await req.hs.db.fetchval("probe", "SELECT 1")
    await req.hs.db.fetchval("probe", "SELECT 2")
    return 201, {"ok": True}


def make_router() -> Router:
    router = build_router()
    router.add("POST", "/_test/echo/{thing}", echo)
    router.add("GET", "/_test/fail", fails)
    router.add("GET", "/_test/limited", limited)
    router.add("PUT", "/_test/created", created)
    router.add_client("GET", "/test_query", query)
    router.add_client("POST", "/test_echo", echo)
    return router


@pytest.fixture
async def h(make_hs_config: MakeConfig) -> AsyncIterator[Harness]:
    harness = await start_harness(
        [make_hs_config(max_request_body_size=BODY_LIMIT)], router=make_router()
    )
    yield harness
    await harness.close()


def assert_matrix_error(resp: Any, status: int, errcode: str) -> None:
    assert resp.status == status, resp.body
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.json["errcode"] == errcode
    assert isinstance(resp.json["error"], str)


async def test_json_body_and_path_params(h: Harness) -> None:
    resp = await h.request("POST", "/_test/echo/a%20b", json={"x": 1})
    assert resp.status == 200
    assert resp.json == {"got": {"x": 1}, "params": {"thing": "a b"}}


async def test_malformed_json_is_m_not_json(h: Harness) -> None:
    resp = await h.request("POST", "/_test/echo/x", body=b"{not json")
    assert_matrix_error(resp, 400, "M_NOT_JSON")
    resp = await h.request("POST", "/_test/echo/x", body=b"[1, 2]")
    assert_matrix_error(resp, 400, "M_BAD_JSON")


async def test_unknown_endpoint_and_wrong_method(h: Harness) -> None:
    resp = await h.request("GET", "/_matrix/client/v3/no_such_thing")
    assert_matrix_error(resp, 404, "M_UNRECOGNIZED")
    resp = await h.request("GET", "/_test/echo/x")
    assert_matrix_error(resp, 405, "M_UNRECOGNIZED")
    resp = await h.request("DELETE", "/_matrix/client/versions")
    assert_matrix_error(resp, 405, "M_UNRECOGNIZED")


async def test_body_over_the_limit_is_m_too_large(h: Harness) -> None:
    ok = b'{"pad": "' + b"x" * (BODY_LIMIT - 20) + b'"}'
    assert (await h.request("POST", "/_test/echo/x", body=ok)).status == 200
    big = b'{"pad": "' + b"x" * (BODY_LIMIT * 4) + b'"}'
    resp = await h.request("POST", "/_test/echo/x", body=big)
    assert_matrix_error(resp, 413, "M_TOO_LARGE")


async def test_body_over_the_limit_without_content_length(h: Harness) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b" " * 512

    resp = await h.client.post("/_test/echo/x", data=chunks(), headers={"Host": h.hs.server_name})
    assert resp.status == 413
    assert (await resp.json())["errcode"] == "M_TOO_LARGE"


async def test_handler_bug_is_500_without_traceback(
    h: Harness, log_records: RecordingHandler
) -> None:
    resp = await h.request("GET", "/_test/fail")
    assert_matrix_error(resp, 500, "M_UNKNOWN")
    assert b"secret internal detail" not in resp.body
    assert b"Traceback" not in resp.body
    (failure,) = log_records.matching("Request failed")
    assert failure.exc_info is not None and "secret internal detail" in str(failure.exc_info[1])
    (before,) = log_records.matching("about to fail")
    # The traceback is logged under the request's own context.
    assert failure.server_name == before.server_name == h.hs.server_name  # type: ignore[attr-defined]
    assert failure.request == before.request  # type: ignore[attr-defined]
    assert failure.request.startswith("GET-")  # type: ignore[attr-defined]


async def test_matrix_error_extras_and_headers(h: Harness) -> None:
    resp = await h.request("GET", "/_test/limited")
    assert_matrix_error(resp, 429, "M_LIMIT_EXCEEDED")
    assert resp.json["retry_after_ms"] == 1500
    assert resp.headers["Retry-After"] == "2"


@pytest.mark.parametrize("path", ["/_matrix/client/v3/login", "/anything/at/all", "/_test/echo/x"])
async def test_cors_preflight_on_any_path(h: Harness, path: str) -> None:
    resp = await h.request(
        "OPTIONS",
        path,
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert 200 <= resp.status < 300
    allowed = {v.strip().lower() for v in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]


async def test_cors_headers_on_normal_and_error_responses(h: Harness) -> None:
    for method, path in [
        ("GET", "/_matrix/client/versions"),
        ("GET", "/nope"),
        ("GET", "/_test/fail"),
        ("GET", "/health"),
    ]:
        resp = await h.request(method, path)
        assert resp.headers["Access-Control-Allow-Origin"] == "*", path
        assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]


async def test_legacy_r0_prefix_and_unknown_query_params(h: Harness) -> None:
    for prefix in ("/_matrix/client/v3", "/_matrix/client/r0"):
        resp = await h.request("GET", f"{prefix}/test_query?limit=5&full=true&whatever=1&x")
        assert resp.status == 200
        assert resp.json == {"limit": 5, "full": True}
        resp = await h.request("POST", f"{prefix}/test_echo?unknown=yes", json={"a": [1]})
        assert resp.json["got"] == {"a": [1]}
    resp = await h.request("GET", "/_matrix/client/v3/test_query?limit=lots")
    assert_matrix_error(resp, 400, "M_INVALID_PARAM")
    resp = await h.request("GET", "/_matrix/client/v3/test_query?full=maybe")
    assert_matrix_error(resp, 400, "M_INVALID_PARAM")
    resp = await h.request("GET", "/_matrix/client/versions?foo=bar")
    assert resp.status == 200


async def test_discovery_endpoints(h: Harness) -> None:
    resp = await h.request("GET", "/_matrix/client/versions")
    assert resp.status == 200
    assert "v1.1" in resp.json["versions"] and "r0.6.1" in resp.json["versions"]
    assert isinstance(resp.json["unstable_features"], dict)

    resp = await h.request("GET", "/.well-known/matrix/client")
    assert resp.status == 200
    assert resp.json == {"m.homeserver": {"base_url": h.hs.config.public_baseurl}}

    resp = await h.request("GET", "/_synapse/admin/v1/server_version")
    assert resp.json == {"server_version": __version__}

    resp = await h.request("GET", "/health")
    assert resp.status == 200 and resp.body == b"OK"

    head = await h.request("HEAD", "/_matrix/client/versions")
    assert head.status == 200


async def test_access_log_line(h: Harness, log_records: RecordingHandler) -> None:
    resp = await h.request("PUT", "/_test/created?access_token=hidden")
    assert resp.status == 201
    lines = [r for r in log_records.records if r.name == "hamlet.access"]
    (line,) = lines
    args: Any = line.args
    (ip, tenant, user, wall, cpu, db, txns, nbytes, status, method, path) = args
    assert ip == "127.0.0.1"
    assert tenant == h.hs.server_name
    assert user == "-"
    assert wall >= 0 and cpu > 0 and db > 0
    assert txns == 2
    assert nbytes == len(resp.body)
    assert (status, method, path) == (201, "PUT", "/_test/created")
    text = line.getMessage()
    assert "hidden" not in text
    assert "Processed request" in text and '201 "PUT /_test/created"' in text
    assert line.server_name == h.hs.server_name  # type: ignore[attr-defined]
    assert line.request.startswith("PUT-")  # type: ignore[attr-defined]


async def test_access_log_for_errors(h: Harness, log_records: RecordingHandler) -> None:
    await h.request("GET", "/nope")
    await h.request("GET", "/_test/fail")
    statuses = [r.args[8] for r in log_records.records if r.name == "hamlet.access"]  # type: ignore[index]
    assert statuses == [404, 500]
