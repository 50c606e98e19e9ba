"""PUT /_matrix/federation/v1/send/{txnId}: a transaction of PDUs and EDUs."""

from __future__ import annotations

from hamlet.api.federation.signed import signed
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.core.canonical_json import JsonDict
from hamlet.handlers.federation.transactions import parse_transaction


async def send_transaction(req: ApiRequest, origin: str) -> JsonDict:
    txn = parse_transaction(origin, req.params["txnId"], await req.json_object())
    return await req.hs.federation_transactions.on_transaction(txn)


def register(router: Router) -> None:
    router.add("PUT", "/_matrix/federation/v1/send/{txnId}", signed(send_transaction))
