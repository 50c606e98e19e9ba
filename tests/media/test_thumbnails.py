"""Thumbnails over HTTP: sizes, crop vs scale, caching, refusals."""

from __future__ import annotations

import asyncio

import pytest

from hamlet.handlers.media import thumbnailer
from tests.media.support import image_format, image_size, jpeg, png, upload_ok
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user

V3 = "/_matrix/media/v3"
V1 = "/_matrix/client/v1/media"


def _thumb(media_id: str, width: int, height: int, method: str | None = None) -> str:
    path = f"{V3}/thumbnail/test.local/{media_id}?width={width}&height={height}"
    return path + (f"&method={method}" if method else "")


async def _png_media(h: Harness, user: TestUser, w: int = 1000, h_: int = 500) -> str:
    return await upload_ok(h, user.token, png(w, h_), content_type="image/png")


@pytest.mark.parametrize(
    ("width", "height", "method", "size"),
    [
        (32, 32, "crop", (32, 32)),
        (96, 96, "crop", (96, 96)),
        (50, 40, "crop", (96, 96)),  # the smallest crop size covering it
        (320, 240, "scale", (320, 160)),  # aspect kept: 1000x500 fits 320 wide
        (100, 100, "scale", (320, 160)),  # 320x240 is the smallest box covering 100x100
        (640, 480, "scale", (640, 320)),
        (2000, 2000, "scale", (800, 400)),  # the largest size there is
        (10, 10, None, (320, 160)),  # method defaults to scale
    ],
)
async def test_thumbnail_sizes(
    harness: Harness, width: int, height: int, method: str | None, size: tuple[int, int]
) -> None:
    alice = await make_user(harness, "alice")
    media_id = await _png_media(harness, alice)
    resp = await harness.request("GET", _thumb(media_id, width, height, method))
    assert resp.status == 200, resp.body
    assert resp.headers["Content-Type"] == "image/png"
    assert resp.headers["Content-Disposition"] == "inline; filename=thumbnail.png"
    assert resp.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert image_size(resp.body) == size


async def test_crop_and_scale_differ(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    media_id = await _png_media(harness, alice, 400, 100)
    crop = await harness.request("GET", _thumb(media_id, 96, 96, "crop"))
    scale = await harness.request("GET", _thumb(media_id, 96, 96, "scale"))
    assert image_size(crop.body) == (96, 96)  # the aspect asked for
    assert image_size(scale.body) == (320, 80)  # the aspect of the image


async def test_thumbnails_are_made_once_and_cached(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int, str]] = []
    real = thumbnailer.render

    def counting(source, width, height, method, out_type):  # type: ignore[no-untyped-def]
        calls.append((width, height, method))
        return real(source, width, height, method, out_type)

    monkeypatch.setattr(thumbnailer, "render", counting)
    alice = await make_user(harness, "alice")
    media_id = await _png_media(harness, alice)
    first = await harness.request("GET", _thumb(media_id, 96, 96, "crop"))
    second = await harness.request("GET", _thumb(media_id, 64, 64, "crop"))  # same size chosen
    third = await harness.request(
        "GET",
        f"{V1}/thumbnail/test.local/{media_id}?width=96&height=96&method=crop",
        token=alice.token,
    )
    assert first.status == second.status == third.status == 200
    assert first.body == second.body == third.body
    assert calls == [(96, 96, "crop")]
    store = harness.hs.config.media_store_path
    path = (
        store
        / "local_thumbnails"
        / media_id[:2]
        / media_id[2:4]
        / media_id[4:]
        / "96-96-image-png-crop"
    )
    assert path.read_bytes() == first.body
    row = await harness.hs.media.store.get_thumbnail(media_id, 96, 96, "crop")
    assert row is not None and row.length == len(first.body)
    # Another size is another thumbnail.
    await harness.request("GET", _thumb(media_id, 320, 240, "scale"))
    assert calls == [(96, 96, "crop"), (320, 240, "scale")]
    # A thumbnail file that went missing is made again.
    path.unlink()
    again = await harness.request("GET", _thumb(media_id, 96, 96, "crop"))
    assert again.status == 200 and again.body == first.body
    assert len(calls) == 3


async def test_small_images_are_never_upscaled(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    original = png(20, 10)
    media_id = await upload_ok(harness, alice.token, original, content_type="image/png")
    scale = await harness.request("GET", _thumb(media_id, 320, 240, "scale"))
    assert scale.status == 200 and scale.body == original  # the original is the thumbnail
    crop = await harness.request("GET", _thumb(media_id, 96, 96, "crop"))
    assert image_size(crop.body) == (10, 10)  # cropped to the aspect, not scaled up


async def test_jpeg_gets_jpeg_thumbnails(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    media_id = await upload_ok(harness, alice.token, jpeg(800, 800), content_type="image/jpeg")
    resp = await harness.request("GET", _thumb(media_id, 96, 96, "crop"))
    assert resp.headers["Content-Type"] == "image/jpeg"
    assert image_format(resp.body) == "JPEG"
    assert image_size(resp.body) == (96, 96)


async def test_non_images_and_broken_images_cannot_be_thumbnailed(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    text = await upload_ok(harness, alice.token, b"hello", content_type="text/plain")
    broken = await upload_ok(harness, alice.token, b"\x89PNG nope", content_type="image/png")
    svg = await upload_ok(harness, alice.token, b"<svg/>", content_type="image/svg+xml")
    for media_id in (text, broken, svg):
        resp = await harness.request("GET", _thumb(media_id, 32, 32, "crop"))
        assert resp.status == 400, media_id
        assert resp.json["errcode"] == "M_UNKNOWN"


async def test_huge_images_are_not_decoded(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(thumbnailer, "MAX_IMAGE_PIXELS", 100 * 100)
    alice = await make_user(harness, "alice")
    media_id = await _png_media(harness, alice, 101, 100)
    resp = await harness.request("GET", _thumb(media_id, 32, 32, "crop"))
    assert resp.status == 413
    assert resp.json["errcode"] == "M_TOO_LARGE"


@pytest.mark.parametrize(
    ("query", "errcode"),
    [
        ("height=32", "M_MISSING_PARAM"),
        ("width=32", "M_MISSING_PARAM"),
        ("width=abc&height=32", "M_INVALID_PARAM"),
        ("width=0&height=32", "M_INVALID_PARAM"),
        ("width=32&height=-5", "M_INVALID_PARAM"),
        ("width=32&height=32&method=zoom", "M_INVALID_PARAM"),
        ("width=32&height=32&animated=maybe", "M_INVALID_PARAM"),
        ("width=32&height=32&timeout_ms=x", "M_INVALID_PARAM"),
    ],
)
async def test_bad_thumbnail_parameters(harness: Harness, query: str, errcode: str) -> None:
    alice = await make_user(harness, "alice")
    media_id = await _png_media(harness, alice, 64, 64)
    resp = await harness.request("GET", f"{V3}/thumbnail/test.local/{media_id}?{query}")
    assert resp.status == 400
    assert resp.json["errcode"] == errcode


async def test_concurrent_requests_make_one_thumbnail(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = thumbnailer.render

    def counting(source, width, height, method, out_type):  # type: ignore[no-untyped-def]
        calls.append(width)
        return real(source, width, height, method, out_type)

    monkeypatch.setattr(thumbnailer, "render", counting)
    alice = await make_user(harness, "alice")
    media_id = await _png_media(harness, alice)
    responses = await asyncio.gather(
        *(harness.request("GET", _thumb(media_id, 640, 480, "scale")) for _ in range(4))
    )
    assert [r.status for r in responses] == [200] * 4
    assert len({r.body for r in responses}) == 1
    assert calls == [640]
