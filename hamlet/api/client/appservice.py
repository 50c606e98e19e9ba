"""Application services: POST /_matrix/client/v1/appservice/{appserviceId}/ping."""

from __future__ import annotations

from typing import Any

from hamlet.api.client._fields import opt_str
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.appservice.queries import MAX_PING_TXN_ID_LENGTH


async def ping(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object(allow_empty=True)
    txn_id = opt_str(body, "transaction_id", max_length=MAX_PING_TXN_ID_LENGTH)
    return await req.hs.app_service_queries.ping(requester, req.params["appserviceId"], txn_id)


def register(router: Router) -> None:
    router.add("POST", "/_matrix/client/v1/appservice/{appserviceId}/ping", ping)
