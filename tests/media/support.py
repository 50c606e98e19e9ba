"""Helpers for the media tests: images made with Pillow, uploads over HTTP."""

from __future__ import annotations

import io

from PIL import Image

from tests.support.harness import Harness, Response


def png(width: int, height: int, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    img = Image.new("RGB", (width, height), color)
    # A stripe, so crops and scales of different boxes differ.
    for x in range(width // 3):
        for y in range(height):
            img.putpixel((x, y), (10, 10, 240))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def jpeg(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (20, 160, 20)).save(buf, "JPEG")
    return buf.getvalue()


def image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size


def image_format(data: bytes) -> str | None:
    with Image.open(io.BytesIO(data)) as img:
        return img.format


async def upload(
    h: Harness,
    token: str,
    data: bytes,
    *,
    content_type: str | None = "application/octet-stream",
    filename: str | None = None,
    host: str | None = None,
) -> Response:
    path = "/_matrix/media/v3/upload"
    if filename is not None:
        from urllib.parse import quote

        path += f"?filename={quote(filename)}"
    headers = {"Content-Type": content_type} if content_type is not None else {}
    if content_type is None:
        # aiohttp would add application/octet-stream itself; send an empty one.
        headers = {"Content-Type": ""}
    return await h.request("POST", path, body=data, token=token, headers=headers, host=host)


async def upload_ok(h: Harness, token: str, data: bytes, **kwargs: object) -> str:
    """Upload; returns the media ID."""
    resp = await upload(h, token, data, **kwargs)  # type: ignore[arg-type]
    assert resp.status == 200, resp.body
    uri: str = resp.json["content_uri"]
    assert uri.startswith("mxc://")
    return uri.rsplit("/", 1)[1]
