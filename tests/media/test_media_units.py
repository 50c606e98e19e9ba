"""The pure parts: thumbnail size choice and geometry, response headers."""

from __future__ import annotations

import pytest

from hamlet.api.media.headers import content_disposition, served_content_type
from hamlet.handlers.media.thumbnailer import THUMBNAIL_SIZES, plan, select_size


@pytest.mark.parametrize(
    ("request_", "chosen"),
    [
        ((32, 32, "crop"), (32, 32, "crop")),
        ((33, 20, "crop"), (96, 96, "crop")),
        ((500, 500, "crop"), (96, 96, "crop")),
        ((1, 1, "scale"), (320, 240, "scale")),
        ((321, 100, "scale"), (640, 480, "scale")),
        ((801, 1, "scale"), (800, 600, "scale")),
    ],
)
def test_select_size(request_: tuple[int, int, str], chosen: tuple[int, int, str]) -> None:
    assert select_size(*request_) == chosen  # type: ignore[arg-type]


@pytest.mark.parametrize("orig", [(1, 1), (7, 3000), (3000, 7), (640, 480), (1001, 999)])
@pytest.mark.parametrize("size", THUMBNAIL_SIZES)
def test_plan_never_upscales_and_keeps_the_box_inside(
    orig: tuple[int, int], size: tuple[int, int, str]
) -> None:
    ow, oh = orig
    w, h, method = size
    p = plan(ow, oh, w, h, method)  # type: ignore[arg-type]
    left, top, right, bottom = p.box
    assert 0 <= left < right <= ow and 0 <= top < bottom <= oh
    assert p.size[0] <= right - left and p.size[1] <= bottom - top  # never bigger
    assert p.size[0] <= w and p.size[1] <= h
    assert p.size[0] >= 1 and p.size[1] >= 1


def test_plan_crop_keeps_the_requested_aspect() -> None:
    p = plan(1000, 500, 96, 96, "crop")
    assert p.box == (250, 0, 750, 500) and p.size == (96, 96)
    assert plan(96, 96, 96, 96, "crop").keep_original


def test_content_disposition() -> None:
    assert content_disposition("image/png", None, inline=True) == "inline"
    assert content_disposition("text/html", "a.html", inline=True) == "attachment; filename=a.html"
    assert content_disposition("image/png", "a b.png", inline=True) == (
        "inline; filename*=utf-8''a%20b.png"
    )
    assert content_disposition("image/png", "é/../x", inline=True) == (
        "inline; filename*=utf-8''%C3%A9%2F..%2Fx"
    )


def test_served_content_type() -> None:
    assert served_content_type("text/plain") == "text/plain; charset=UTF-8"
    assert served_content_type("text/plain; charset=latin-1") == "text/plain; charset=latin-1"
    assert served_content_type("image/png") == "image/png"
