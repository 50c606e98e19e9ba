"""Synapse's media admin API: delete, quarantine, unquarantine."""

from __future__ import annotations

from tests.media.support import png, upload_ok
from tests.support.harness import Harness
from tests.support.users import make_user

V3 = "/_matrix/media/v3"
ADMIN = "/_synapse/admin/v1/media"


async def test_quarantine_hides_media_until_released(harness: Harness) -> None:
    admin = await make_user(harness, "admin", admin=True)
    alice = await make_user(harness, "alice")
    media_id = await upload_ok(harness, alice.token, png(64, 64), content_type="image/png")
    download = f"{V3}/download/test.local/{media_id}"
    thumb = f"{V3}/thumbnail/test.local/{media_id}?width=32&height=32&method=crop"

    resp = await harness.request(
        "POST", f"{ADMIN}/quarantine/test.local/{media_id}", token=alice.token
    )
    assert resp.status == 403
    resp = await harness.request(
        "POST", f"{ADMIN}/quarantine/test.local/{media_id}", token=admin.token
    )
    assert resp.status == 200 and resp.json == {}
    for path in (download, thumb):
        resp = await harness.request("GET", path)
        assert resp.status == 404
        assert resp.json["errcode"] == "M_NOT_FOUND"
    media = await harness.hs.media.store.get_local_media(media_id)
    assert media is not None and media.quarantined_by == admin.user_id

    resp = await harness.request(
        "POST", f"{ADMIN}/unquarantine/test.local/{media_id}", token=admin.token
    )
    assert resp.status == 200
    assert (await harness.request("GET", download)).status == 200
    assert (await harness.request("GET", thumb)).status == 200


async def test_delete_media(harness: Harness) -> None:
    admin = await make_user(harness, "admin", admin=True)
    alice = await make_user(harness, "alice")
    media_id = await upload_ok(harness, alice.token, png(200, 200), content_type="image/png")
    thumb = await harness.request(
        "GET", f"{V3}/thumbnail/test.local/{media_id}?width=32&height=32&method=crop"
    )
    assert thumb.status == 200
    store = harness.hs.config.media_store_path
    content = store / "local_content" / media_id[:2] / media_id[2:4] / media_id[4:]
    thumbs = store / "local_thumbnails" / media_id[:2] / media_id[2:4] / media_id[4:]
    assert content.exists() and thumbs.exists()

    path = f"{ADMIN}/test.local/{media_id}"
    assert (await harness.request("DELETE", path, token=alice.token)).status == 403
    resp = await harness.request("DELETE", path, token=admin.token)
    assert resp.status == 200
    assert resp.json == {"deleted_media": [media_id], "total": 1}
    assert not content.exists() and not thumbs.exists()
    assert (await harness.request("GET", f"{V3}/download/test.local/{media_id}")).status == 404
    assert await harness.hs.media.store.get_thumbnail(media_id, 32, 32, "crop") is None

    resp = await harness.request("DELETE", path, token=admin.token)
    assert resp.status == 404
    assert resp.json["errcode"] == "M_NOT_FOUND"
    resp = await harness.request("DELETE", f"{ADMIN}/other.server/{media_id}", token=admin.token)
    assert resp.status == 400
