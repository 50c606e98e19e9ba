"""Media endpoints: `/_matrix/media/{v3,r0}/...`, `/_matrix/media/v1/create`
and the authenticated `/_matrix/client/v1/media/...`.

The legacy download and thumbnail endpoints need no token (as in the spec
before v1.11); the authenticated ones do, guests included. URL previews
are not offered (there is no outbound fetching): their path is simply not
routed, so clients get `404 M_UNRECOGNIZED` as from a Synapse with
previews disabled.
"""

from __future__ import annotations

import logging
from typing import Any, Final, cast

from aiohttp import web

from hamlet.api.media.headers import media_headers
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.api.server import CORS_HEADERS
from hamlet.handlers.common.errors import InvalidParamError, MissingParamError
from hamlet.handlers.media.repository import DEFAULT_TIMEOUT_MS, MediaFile
from hamlet.handlers.media.thumbnailer import Method

logger = logging.getLogger(__name__)

LEGACY_PREFIXES: Final = ("/_matrix/media/v3", "/_matrix/media/r0")
AUTHED_PREFIX: Final = "/_matrix/client/v1/media"


def _content_type(req: ApiRequest) -> str | None:
    value = req.http.headers.get("Content-Type")
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > 255 or not all(32 <= ord(c) <= 126 for c in value):
        raise InvalidParamError("Invalid Content-Type")
    return value


def _upload_name(req: ApiRequest) -> str | None:
    name = req.query.get("filename")
    if not name:
        return None
    if "\x00" in name or len(name) > 1024:
        raise InvalidParamError("Invalid filename")
    return name


async def upload(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    content_type, upload_name = _content_type(req), _upload_name(req)
    media = req.hs.media
    await media.check_upload_allowed(requester, req.http.content_length)
    uri = await media.upload(
        requester,
        req.stream_body(req.hs.config.max_upload_size),
        content_type=content_type,
        upload_name=upload_name,
    )
    return {"content_uri": uri}


async def create(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    return await req.hs.media.create(requester)


async def upload_to(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    content_type, upload_name = _content_type(req), _upload_name(req)
    media = req.hs.media
    server_name, media_id = req.params["serverName"], req.params["mediaId"]
    await media.check_may_upload_to(requester, server_name, media_id)
    await media.check_upload_allowed(requester, req.http.content_length)
    await media.upload_to(
        requester,
        server_name,
        media_id,
        req.stream_body(req.hs.config.max_upload_size),
        content_type=content_type,
        upload_name=upload_name,
    )
    return {}


async def config(req: ApiRequest) -> dict[str, Any]:
    await req.authenticate(allow_guest=True)
    return {"m.upload.size": req.hs.config.max_upload_size}


def _timeout_ms(req: ApiRequest) -> int:
    value = req.query_int("timeout_ms", DEFAULT_TIMEOUT_MS)
    assert value is not None
    # Parsed for validity; there are no remote media and no redirects.
    req.query_bool("allow_remote", True)
    req.query_bool("allow_redirect", False)
    return value


async def _send(req: ApiRequest, file: MediaFile) -> web.StreamResponse:
    """Stream the open file to the client, closing it whatever happens."""
    try:
        headers = media_headers(file.content_type, file.upload_name, thumbnail=file.is_thumbnail)
        resp = web.StreamResponse(status=200, headers={**CORS_HEADERS, **headers})
        resp.content_length = file.length
        await resp.prepare(req.http)
        try:
            if req.method != "HEAD":
                async for chunk in file.reader.chunks():
                    await resp.write(chunk)
            await resp.write_eof()
        except ConnectionError:
            # The client went away mid-file; the response has begun, so no error body.
            logger.info("Client went away during a media response")
        return resp
    finally:
        await file.reader.close()


async def _download(req: ApiRequest) -> web.StreamResponse:
    file = await req.hs.media.download(
        req.params["serverName"], req.params["mediaId"], _timeout_ms(req)
    )
    file_name = req.params.get("fileName")
    if file_name:
        file.upload_name = file_name
    return await _send(req, file)


async def download(req: ApiRequest) -> web.StreamResponse:
    return await _download(req)


async def download_authed(req: ApiRequest) -> web.StreamResponse:
    await req.authenticate(allow_guest=True)
    return await _download(req)


def _thumbnail_params(req: ApiRequest) -> tuple[int, int, Method]:
    sizes = []
    for name in ("width", "height"):
        value = req.query_int(name)
        if value is None:
            raise MissingParamError(f"Missing integer query parameter {name!r}")
        if value <= 0:
            raise InvalidParamError(f"Query parameter {name!r} must be positive")
        sizes.append(value)
    method = req.query.get("method", "scale")
    if method not in ("crop", "scale"):
        raise InvalidParamError("Query parameter 'method' must be 'crop' or 'scale'")
    req.query_bool("animated", False)  # no animated thumbnails: `false` is always honoured
    return sizes[0], sizes[1], cast(Method, method)


async def _thumbnail(req: ApiRequest) -> web.StreamResponse:
    width, height, method = _thumbnail_params(req)
    file = await req.hs.media.thumbnail(
        req.params["serverName"],
        req.params["mediaId"],
        width=width,
        height=height,
        method=method,
        timeout_ms=_timeout_ms(req),
    )
    return await _send(req, file)


async def thumbnail(req: ApiRequest) -> web.StreamResponse:
    return await _thumbnail(req)


async def thumbnail_authed(req: ApiRequest) -> web.StreamResponse:
    await req.authenticate(allow_guest=True)
    return await _thumbnail(req)


def register(router: Router) -> None:
    media_path = "{serverName}/{mediaId}"
    for prefix in LEGACY_PREFIXES:
        router.add("POST", f"{prefix}/upload", upload)
        router.add("PUT", f"{prefix}/upload/{media_path}", upload_to)
        router.add("GET", f"{prefix}/download/{media_path}", download)
        router.add("GET", f"{prefix}/download/{media_path}/{{fileName}}", download)
        router.add("GET", f"{prefix}/thumbnail/{media_path}", thumbnail)
        router.add("GET", f"{prefix}/config", config)
    router.add("POST", "/_matrix/media/v1/create", create)
    router.add("GET", f"{AUTHED_PREFIX}/download/{media_path}", download_authed)
    router.add("GET", f"{AUTHED_PREFIX}/download/{media_path}/{{fileName}}", download_authed)
    router.add("GET", f"{AUTHED_PREFIX}/thumbnail/{media_path}", thumbnail_authed)
    router.add("GET", f"{AUTHED_PREFIX}/config", config)
