"""GET /sync."""

from __future__ import annotations

from aiohttp import web

from hamlet.api.client.sync_json import sync_response
from hamlet.api.request import ApiRequest, parse_json
from hamlet.api.router import Router
from hamlet.api.server import shared_json_response
from hamlet.core import errors as core_errors
from hamlet.core.filters import DEFAULT_FILTER, Filter, parse_filter
from hamlet.handlers.common.errors import BadJsonError, InvalidParamError
from hamlet.handlers.common.streams import StreamToken
from hamlet.handlers.sync.handler import SyncRequest
from hamlet.runtime.logcontext import tag_request

ENCODING = "v3"
PRESENCE_STATES = ("online", "offline", "unavailable")


async def _filter(req: ApiRequest, user_id: str) -> Filter:
    raw = req.query.get("filter")
    if raw is None:
        return DEFAULT_FILTER
    if raw.lstrip().startswith("{"):
        try:
            return parse_filter(parse_json(raw))
        except core_errors.FilterError as e:
            raise BadJsonError(str(e)) from None
    return await req.hs.filters.get_filter(user_id, raw)


async def sync(req: ApiRequest) -> web.Response:
    requester = await req.authenticate(allow_guest=True)
    since_raw = req.query.get("since")
    since = StreamToken.parse(since_raw) if since_raw else None
    timeout = req.query_int("timeout", 0) or 0
    if timeout < 0:
        raise InvalidParamError("timeout must not be negative")
    set_presence = req.query.get("set_presence")
    if set_presence is not None and set_presence not in PRESENCE_STATES:
        raise InvalidParamError(f"set_presence must be one of {', '.join(PRESENCE_STATES)}")
    full_state = req.query_bool("full_state")
    # Synapse's labels: a dashboard tells the kinds of sync apart by them.
    if since is None:
        tag_request("initial_sync")
    else:
        tag_request("full_state_sync" if full_state else "incremental_sync")
    request = SyncRequest(
        requester=requester,
        since=since,
        timeout_ms=timeout,
        full_state=full_state,
        filter=await _filter(req, requester.user_id),
        set_presence=set_presence,
    )
    result = await req.hs.sync.sync(request)
    # Identical requests share `result`: a retry storm (or a flood) of
    # full syncs of a large account encodes its megabytes once.
    return shared_json_response(result.encoded, ENCODING, lambda: sync_response(result))


def register(router: Router) -> None:
    router.add_client("GET", "/sync", sync, capped=False)
