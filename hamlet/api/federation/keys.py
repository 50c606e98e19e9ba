"""Key exchange: `/_matrix/key/v2/server` (our keys) and the notary's
`/_matrix/key/v2/query`. Unauthenticated, as the spec has them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.core.canonical_json import JsonDict
from hamlet.core.ids import is_valid_server_name
from hamlet.handlers.common.errors import BadJsonError, InvalidParamError
from hamlet.handlers.federation.notary import MAX_QUERY_KEY_IDS, MAX_QUERY_SERVERS, KeyQuery

KEY_PREFIX = "/_matrix/key/v2"


async def server_keys(req: ApiRequest) -> JsonDict:
    return req.hs.keyring.local_key_response()


def _server_name(name: str) -> str:
    if not is_valid_server_name(name):
        raise InvalidParamError(f"{name!r} is not a server name")
    return name


def _timestamp(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadJsonError("minimum_valid_until_ts must be a timestamp")
    return value


def _queries(body: Mapping[str, Any]) -> dict[str, KeyQuery]:
    server_keys = body.get("server_keys")
    if not isinstance(server_keys, Mapping):
        raise BadJsonError("server_keys must be an object")
    # Counted before anything is walked, so a huge query costs nothing.
    if len(server_keys) > MAX_QUERY_SERVERS:
        raise InvalidParamError(f"At most {MAX_QUERY_SERVERS} servers per key query")
    queries: dict[str, KeyQuery] = {}
    for name, key_ids in server_keys.items():
        if not isinstance(key_ids, Mapping):
            raise BadJsonError("each server in server_keys must map to an object")
        if len(key_ids) > MAX_QUERY_KEY_IDS:
            raise InvalidParamError(f"At most {MAX_QUERY_KEY_IDS} key IDs per server ({name})")
        minimums = []
        for criterion in key_ids.values():
            if not isinstance(criterion, Mapping):
                raise BadJsonError("each key ID in server_keys must map to an object")
            ts = _timestamp(criterion.get("minimum_valid_until_ts"))
            if ts is not None:
                minimums.append(ts)
        # One fetch answers every key ID, so the strictest minimum given
        # stands for them all (none given: now).
        queries[_server_name(name)] = KeyQuery(tuple(key_ids), max(minimums, default=None))
    return queries


async def query_keys(req: ApiRequest) -> JsonDict:
    queries = _queries(await req.json_object())
    return {"server_keys": await req.hs.key_notary.query(queries)}


async def query_server_keys(req: ApiRequest) -> JsonDict:
    name = _server_name(req.params["serverName"])
    min_valid = req.query_int("minimum_valid_until_ts")
    if min_valid is not None and min_valid < 0:
        raise InvalidParamError("minimum_valid_until_ts must be a timestamp")
    return {"server_keys": await req.hs.key_notary.query({name: KeyQuery((), min_valid)})}


def register(router: Router) -> None:
    router.add("GET", f"{KEY_PREFIX}/server", server_keys)
    # Before v1.0 servers named the key wanted; every key is served anyway.
    router.add("GET", f"{KEY_PREFIX}/server/{{keyId}}", server_keys)
    router.add("POST", f"{KEY_PREFIX}/query", query_keys)
    router.add("GET", f"{KEY_PREFIX}/query/{{serverName}}", query_server_keys)
