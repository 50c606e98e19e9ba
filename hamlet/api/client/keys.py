"""End-to-end encryption keys: /keys/upload, query, claim, changes,
device_signing/upload and signatures/upload."""

from __future__ import annotations

from typing import Any

from hamlet.api.client._fields import uia_request_key
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.accounts.account import PASSWORD_FLOWS
from hamlet.handlers.common.errors import InvalidParamError, MissingParamError
from hamlet.handlers.common.streams import StreamToken
from hamlet.handlers.e2ee.keys import DEFAULT_REMOTE_TIMEOUT_MS, MAX_REMOTE_TIMEOUT_MS


async def upload_keys(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate(allow_guest=True)
    body = await req.json_object()
    counts = await req.hs.e2e_keys.upload_keys(requester.user_id, requester.device_id, body)
    return {"one_time_key_counts": counts}


async def query_keys(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate(allow_guest=True)
    body = await req.json_object()
    if "device_keys" not in body:
        raise MissingParamError("Missing param: device_keys")
    return await req.hs.e2e_keys.query_keys(
        requester.user_id, body["device_keys"], _remote_timeout(body)
    )


async def claim_keys(req: ApiRequest) -> dict[str, Any]:
    await req.authenticate(allow_guest=True)
    body = await req.json_object()
    if "one_time_keys" not in body:
        raise MissingParamError("Missing param: one_time_keys")
    return await req.hs.e2e_keys.claim_keys(body["one_time_keys"], _remote_timeout(body))


def _remote_timeout(body: dict[str, Any]) -> int:
    """How long other servers may take (ms): the body's `timeout`, capped."""
    value = body.get("timeout", DEFAULT_REMOTE_TIMEOUT_MS)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidParamError("'timeout' must be an integer")
    return max(0, min(value, MAX_REMOTE_TIMEOUT_MS))


async def key_changes(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate(allow_guest=True)
    since_raw = req.query.get("from")
    upto_raw = req.query.get("to")
    if since_raw is None or upto_raw is None:
        raise MissingParamError("Missing param: 'from' and 'to' are required")
    since = StreamToken.parse(since_raw)
    upto = StreamToken.parse(upto_raw)
    changes = await req.hs.device_lists.get_changes(requester.user_id, since, upto)
    return changes.to_json()


async def upload_signing_keys(req: ApiRequest) -> dict[str, Any]:
    hs = req.hs
    requester = await req.authenticate()
    body = await req.json_object()
    keys = await hs.e2e_keys.parse_signing_keys(requester.user_id, body)
    if not await hs.e2e_keys.signing_keys_need_uia(requester.user_id, keys):
        await hs.e2e_keys.upload_signing_keys(requester.user_id, keys)
        return {}
    async with hs.uia.authenticate(
        body.get("auth"),
        request_key=uia_request_key(req),
        flows=PASSWORD_FLOWS,
        user_id=requester.user_id,
    ):
        await hs.e2e_keys.upload_signing_keys(requester.user_id, keys)
    return {}


async def upload_signatures(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object()
    return await req.hs.e2e_keys.upload_signatures(requester.user_id, body)


def register(router: Router) -> None:
    router.add_client("POST", "/keys/upload", upload_keys)
    router.add_client("POST", "/keys/query", query_keys)
    router.add_client("POST", "/keys/claim", claim_keys)
    router.add_client("GET", "/keys/changes", key_changes)
    router.add_client("POST", "/keys/device_signing/upload", upload_signing_keys)
    router.add_client("POST", "/keys/signatures/upload", upload_signatures)
