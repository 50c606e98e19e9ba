"""Inbound X-Matrix authentication: one tenant signs, the other fetches its keys and checks."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from hamlet.api.federation.auth import authenticate_origin
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.api.routes import build_router
from hamlet.core.crypto import SigningKey, generate_signing_key
from hamlet.core.xmatrix import sign_request
from hamlet.homeserver import HomeServer
from tests.federation.conftest import StartServers
from tests.support.federation import HarnessTransport
from tests.support.harness import Harness, Response

PATH = "/_matrix/federation/v1/test_echo"


async def echo(req: ApiRequest) -> dict[str, Any]:
    return {"origin": await authenticate_origin(req)}


def _router() -> Router:
    router = build_router()
    for method in ("GET", "PUT"):
        router.add(method, PATH, echo)
    return router


@pytest.fixture
async def h(make_hs_config: Any, start_servers: StartServers) -> Harness:
    return await start_servers(
        make_hs_config("a.test"),
        make_hs_config("b.test"),
        make_hs_config("w.test", federation_domain_whitelist=["b.test"]),
        router=_router(),
    )


def _header(
    origin: HomeServer | tuple[str, SigningKey],
    destination: str,
    *,
    method: str = "GET",
    uri: str = PATH,
    content: Any = None,
) -> str:
    """`origin` signs: a tenant, or any server name with any key."""
    name, key = (
        (origin.server_name, origin.signing_key) if isinstance(origin, HomeServer) else origin
    )
    return sign_request(
        method=method,
        uri=uri,
        origin=name,
        destination=destination,
        content=content,
        signing_key=key,
    )


async def _send(
    h: Harness,
    header: str | None,
    *,
    host: str = "b.test",
    method: str = "GET",
    path: str = PATH,
    body: Any = None,
) -> Response:
    headers = {"Authorization": header} if header is not None else {}
    data = orjson.dumps(body) if body is not None else None
    return await h.request(method, path, body=data, host=host, headers=headers)


def _error(resp: Response) -> tuple[int, str]:
    return resp.status, resp.json["errcode"]


async def test_a_signed_request_names_its_origin(h: Harness, transport: HarnessTransport) -> None:
    a = h.servers["a.test"]
    resp = await _send(h, _header(a, "b.test"))
    assert (resp.status, resp.json) == (200, {"origin": "a.test"})
    content = {"pdus": [], "edus": [{"edu_type": "m.typing"}]}
    header = _header(a, "b.test", method="PUT", content=content)
    resp = await _send(h, header, method="PUT", body=content)
    assert (resp.status, resp.json) == (200, {"origin": "a.test"})
    query_path = f"{PATH}?limit=5&v=a%20b"
    resp = await _send(h, _header(a, "b.test", uri=query_path), path=query_path)
    assert resp.status == 200, resp.body
    # b.test fetched a.test's keys once, from a.test itself.
    assert transport.count("GET", "a.test", "/_matrix/key/v2/server") == 1


async def test_without_destination_the_request_is_still_checked(h: Harness) -> None:
    a = h.servers["a.test"]
    header = _header(a, "b.test").replace(',destination="b.test"', "")
    assert (await _send(h, header)).status == 200
    # The signature still covers the destination: signed for a.test, sent to b.test.
    header = _header(a, "a.test").replace(',destination="a.test"', "")
    assert _error(await _send(h, header)) == (401, "M_UNAUTHORIZED")


async def test_tampered_requests_are_refused(h: Harness) -> None:
    a = h.servers["a.test"]
    content = {"pdus": []}
    header = _header(a, "b.test", method="PUT", content=content)
    tampered = await _send(h, header, method="PUT", body={"pdus": [1]})
    assert _error(tampered) == (401, "M_UNAUTHORIZED")
    wrong_query = await _send(h, _header(a, "b.test", uri=f"{PATH}?x=1"), path=f"{PATH}?x=2")
    assert _error(wrong_query) == (401, "M_UNAUTHORIZED")
    wrong_method = await _send(h, _header(a, "b.test"), method="PUT", body={})
    assert _error(wrong_method) == (401, "M_UNAUTHORIZED")
    forged = _header(("a.test", generate_signing_key(a.signing_key.version)), "b.test")
    assert _error(await _send(h, forged)) == (401, "M_UNAUTHORIZED")


async def test_missing_malformed_and_misdirected_headers(h: Harness) -> None:
    a = h.servers["a.test"]
    assert _error(await _send(h, None)) == (401, "M_UNAUTHORIZED")
    assert _error(await _send(h, "Bearer abc")) == (401, "M_UNAUTHORIZED")
    assert _error(await _send(h, 'X-Matrix origin="a.test"')) == (400, "M_UNAUTHORIZED")
    assert _error(await _send(h, "X-Matrix " + "x" * 5000)) == (400, "M_UNAUTHORIZED")
    elsewhere = _header(a, "c.test")
    assert _error(await _send(h, elsewhere)) == (401, "M_UNAUTHORIZED")


async def test_unknown_origins_are_refused(h: Harness, transport: HarnessTransport) -> None:
    header = _header(("stranger.test", generate_signing_key()), "b.test")
    assert _error(await _send(h, header)) == (401, "M_UNAUTHORIZED")
    assert transport.count("GET", "stranger.test") == 1


async def test_the_whitelist_refuses_before_fetching_keys(
    h: Harness, transport: HarnessTransport
) -> None:
    a, b = h.servers["a.test"], h.servers["b.test"]
    refused = await _send(h, _header(a, "w.test"), host="w.test")
    assert _error(refused) == (403, "M_FORBIDDEN")
    assert transport.requests == []
    allowed = await _send(h, _header(b, "w.test"), host="w.test")
    assert (allowed.status, allowed.json) == (200, {"origin": "b.test"})
