"""Synapse's shared-secret registration: GET/POST /_synapse/admin/v1/register."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router

PATH = "/_synapse/admin/v1/register"


async def get_nonce(req: ApiRequest) -> dict[str, Any]:
    return {"nonce": req.hs.shared_secret_registration.new_nonce()}


async def post_register(req: ApiRequest) -> dict[str, Any]:
    body = await req.json_object()
    return await req.hs.shared_secret_registration.register(body)


def register(router: Router) -> None:
    router.add("GET", PATH, get_nonce)
    router.add("POST", PATH, post_register)
