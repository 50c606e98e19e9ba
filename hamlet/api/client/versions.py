"""Discovery endpoints: /versions, the client .well-known, server version, health."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hamlet import __version__
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.api.server import CORS_HEADERS

# The spec versions whose Client-Server API we really serve. What clients
# key on in the later ones: v1.7 asynchronous uploads (`/media/v1/create`),
# v1.8 room version 11, v1.10 recursive relations, v1.11 authenticated
# media (without it mautrix and others fall back to the legacy endpoints).
SPEC_VERSIONS = [
    "r0.6.1",
    *(f"v1.{minor}" for minor in range(1, 12)),
]


# Features from later spec versions that we serve, as Synapse announces them:
# authenticated media (MSC3916, stable in v1.11) lets clients use /_matrix/client/v1/media;
# simplified sliding sync (MSC4186) is what Element X and matrix-rust-sdk sync with.
UNSTABLE_FEATURES = {"org.matrix.msc3916.stable": True, "org.matrix.simplified_msc3575": True}


async def versions(req: ApiRequest) -> dict[str, Any]:
    return {"versions": SPEC_VERSIONS, "unstable_features": UNSTABLE_FEATURES}


async def well_known_client(req: ApiRequest) -> dict[str, Any]:
    return {"m.homeserver": {"base_url": req.hs.config.public_baseurl}}


async def server_version(req: ApiRequest) -> dict[str, Any]:
    return {"server_version": __version__}


async def health(req: ApiRequest) -> web.Response:
    return web.Response(text="OK", headers=CORS_HEADERS)


def register(router: Router) -> None:
    router.add("GET", "/_matrix/client/versions", versions)
    router.add("GET", "/.well-known/matrix/client", well_known_client)
    router.add("GET", "/_synapse/admin/v1/server_version", server_version)
    router.add("GET", "/health", health)
