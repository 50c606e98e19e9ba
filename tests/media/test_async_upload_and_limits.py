"""POST /create + PUT /upload, waiting downloads, rate limits and the tenant's cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from hamlet.config import HomeServerConfig
from tests.conftest import advance, settle
from tests.media.support import upload, upload_ok
from tests.support.harness import Harness, start_harness
from tests.support.users import make_user

V3 = "/_matrix/media/v3"
V1 = "/_matrix/client/v1/media"
CREATE = "/_matrix/media/v1/create"


async def _create(h: Harness, token: str) -> str:
    resp = await h.request("POST", CREATE, token=token)
    assert resp.status == 200, resp.body
    assert resp.json["content_uri"].startswith("mxc://test.local/")
    assert isinstance(resp.json["unused_expires_at"], int)
    media_id: str = resp.json["content_uri"].rsplit("/", 1)[1]
    return media_id


async def test_create_then_upload(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    media_id = await _create(harness, alice.token)
    put = f"{V3}/upload/test.local/{media_id}?filename=later.txt"

    resp = await harness.request("GET", f"{V3}/download/test.local/{media_id}?timeout_ms=0")
    assert resp.status == 504
    assert resp.json["errcode"] == "M_NOT_YET_UPLOADED"

    resp = await harness.request(
        "PUT", put, body=b"late", token=bob.token, headers={"Content-Type": "text/plain"}
    )
    assert resp.status == 403
    assert resp.json["errcode"] == "M_FORBIDDEN"

    resp = await harness.request(
        "PUT", put, body=b"late", token=alice.token, headers={"Content-Type": "text/plain"}
    )
    assert resp.status == 200 and resp.json == {}

    resp = await harness.request(
        "PUT", put, body=b"again", token=alice.token, headers={"Content-Type": "text/plain"}
    )
    assert resp.status == 409
    assert resp.json["errcode"] == "M_CANNOT_OVERWRITE_MEDIA"

    resp = await harness.request("GET", f"{V1}/download/test.local/{media_id}", token=bob.token)
    assert resp.status == 200 and resp.body == b"late"
    assert resp.headers["Content-Disposition"] == "inline; filename=later.txt"
    assert resp.headers["Content-Type"] == "text/plain; charset=UTF-8"


async def test_upload_to_unknown_or_remote_media_is_404(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    media_id = await _create(harness, alice.token)
    for path in (
        f"{V3}/upload/test.local/NoSuchMediaIdHereAtAll",
        f"{V3}/upload/elsewhere.example/{media_id}",
    ):
        resp = await harness.request("PUT", path, body=b"x", token=alice.token)
        assert resp.status == 404, path
        assert resp.json["errcode"] == "M_NOT_FOUND"
    # A finished plain upload cannot be overwritten either.
    done = await upload_ok(harness, alice.token, b"done")
    resp = await harness.request(
        "PUT", f"{V3}/upload/test.local/{done}", body=b"x", token=alice.token
    )
    assert resp.status == 409


async def test_download_waits_for_the_upload(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    media_id = await _create(harness, alice.token)
    waiting = asyncio.ensure_future(
        harness.request("GET", f"{V3}/download/test.local/{media_id}?timeout_ms=20000")
    )
    await settle()
    assert media_id in harness.hs.media._waiters, "the download is not waiting"
    assert not waiting.done()
    resp = await harness.request(
        "PUT", f"{V3}/upload/test.local/{media_id}", body=b"arrived", token=alice.token
    )
    assert resp.status == 200
    got = await waiting
    assert got.status == 200 and got.body == b"arrived"
    assert harness.hs.media._waiters == {}


async def test_download_gives_up_after_timeout(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    media_id = await _create(harness, alice.token)
    waiting = asyncio.ensure_future(
        harness.request("GET", f"{V3}/download/test.local/{media_id}?timeout_ms=5000")
    )
    await settle()
    assert media_id in harness.hs.media._waiters, "the download is not waiting"
    await advance(4)
    assert not waiting.done()
    await advance(2)
    resp = await waiting
    assert resp.status == 504
    assert resp.json["errcode"] == "M_NOT_YET_UPLOADED"


async def test_unused_media_ids_expire(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    media_id = await _create(harness, alice.token)
    # Made a day and a second ago (moving the clock a day would fire every timer on the way).
    await harness.hs.db.execute(
        "age_media",
        "UPDATE local_media_repository SET created_ts = created_ts - ? WHERE media_id = ?",
        (24 * 3600 + 1) * 1000,
        media_id,
    )
    resp = await harness.request(
        "PUT", f"{V3}/upload/test.local/{media_id}", body=b"x", token=alice.token
    )
    assert resp.status == 404
    resp = await harness.request("GET", f"{V3}/download/test.local/{media_id}?timeout_ms=0")
    assert resp.status == 404


async def test_pending_uploads_are_limited(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    ids = [await _create(harness, alice.token) for _ in range(5)]
    resp = await harness.request("POST", CREATE, token=alice.token)
    assert resp.status == 429
    assert resp.json["errcode"] == "M_LIMIT_EXCEEDED"
    # Finishing one frees a slot.
    await harness.request("PUT", f"{V3}/upload/test.local/{ids[0]}", body=b"x", token=alice.token)
    await _create(harness, alice.token)


@pytest.fixture
async def limited(make_hs_config: Callable[..., HomeServerConfig]) -> AsyncIterator[Harness]:
    h = await start_harness(
        [
            make_hs_config(
                rc_media_create={"per_second": 0.1, "burst_count": 2},
                limits={"max_media_bytes": 1000},
                admin_contact="mailto:admin@test.local",
            )
        ]
    )
    yield h
    await h.close()


async def test_rc_media_create_limits_create_and_upload(limited: Harness) -> None:
    alice = await make_user(limited, "alice")
    admin = await make_user(limited, "admin", admin=True)
    await _create(limited, alice.token)
    await upload_ok(limited, alice.token, b"1")
    resp = await limited.request("POST", CREATE, token=alice.token)
    assert resp.status == 429
    assert resp.json["errcode"] == "M_LIMIT_EXCEEDED"
    assert resp.json["retry_after_ms"] > 0
    assert "Retry-After" in resp.headers
    resp = await upload(limited, alice.token, b"2")
    assert resp.status == 429
    # Admins are exempt; the limit is per user.
    for _ in range(3):
        await upload_ok(limited, admin.token, b"a")
    bob = await make_user(limited, "bob")
    await upload_ok(limited, bob.token, b"b")
    await advance(10)
    await upload_ok(limited, alice.token, b"3")


async def test_tenant_media_cap(limited: Harness) -> None:
    admin = await make_user(limited, "admin", admin=True)
    first = await upload_ok(limited, admin.token, b"x" * 600)
    resp = await upload(limited, admin.token, b"y" * 600)
    assert resp.status == 403
    assert resp.json["errcode"] == "M_RESOURCE_LIMIT_EXCEEDED"
    assert resp.json["limit_type"] == "max_media_bytes"
    assert resp.json["admin_contact"] == "mailto:admin@test.local"
    await upload_ok(limited, admin.token, b"z" * 400)  # exactly at the cap
    # The cap also applies to asynchronous uploads.
    media_id = await _create(limited, admin.token)
    resp = await limited.request(
        "PUT", f"{V3}/upload/test.local/{media_id}", body=b"w", token=admin.token
    )
    assert resp.status == 403
    assert resp.json["errcode"] == "M_RESOURCE_LIMIT_EXCEEDED"
    # Deleting media makes room again.
    resp = await limited.request(
        "DELETE", f"/_synapse/admin/v1/media/test.local/{first}", token=admin.token
    )
    assert resp.status == 200
    await upload_ok(limited, admin.token, b"y" * 600)
    tmp = limited.hs.config.media_store_path / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []
