"""Uploads and downloads over HTTP, on both engines."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hamlet.config import HomeServerConfig
from tests.media.support import upload, upload_ok
from tests.support.harness import Harness, start_harness
from tests.support.users import make_user

V3 = "/_matrix/media/v3"
V1 = "/_matrix/client/v1/media"


def _files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


async def test_round_trip_bytes_and_headers(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    data = os.urandom(700_000)  # several chunks each way
    media_id = await upload_ok(
        harness, alice.token, data, content_type="image/png", filename="cat.png"
    )
    for path, token in (
        (f"{V3}/download/test.local/{media_id}", None),
        (f"{V1}/download/test.local/{media_id}", alice.token),
    ):
        resp = await harness.request("GET", path, token=token)
        assert resp.status == 200, resp.body
        assert resp.body == data
        assert resp.headers["Content-Type"] == "image/png"
        assert resp.headers["Content-Length"] == str(len(data))
        assert resp.headers["Content-Disposition"] == "inline; filename=cat.png"
        assert resp.headers["Content-Security-Policy"].startswith("sandbox; default-src 'none';")
        assert resp.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
        assert resp.headers["X-Content-Security-Policy"] == "sandbox"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["Access-Control-Allow-Origin"] == "*"


async def test_path_file_name_overrides_upload_name(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    media_id = await upload_ok(harness, alice.token, b"x", content_type="text/plain")
    resp = await harness.request("GET", f"{V3}/download/test.local/{media_id}/other.txt")
    assert resp.status == 200
    assert resp.headers["Content-Disposition"] == "inline; filename=other.txt"
    assert resp.headers["Content-Type"] == "text/plain; charset=UTF-8"


@pytest.mark.parametrize(
    ("filename", "disposition"),
    [
        ("résumé ☃.pdf", "attachment; filename*=utf-8''r%C3%A9sum%C3%A9%20%E2%98%83.pdf"),
        ('he said "hi".pdf', "attachment; filename*=utf-8''he%20said%20%22hi%22.pdf"),
        ("a;b=c\r\nX-Evil: 1", "attachment; filename*=utf-8''a%3Bb%3Dc%0D%0AX-Evil%3A%201"),
        ("plain.pdf", "attachment; filename=plain.pdf"),
    ],
)
async def test_unicode_and_quoted_filenames(
    harness: Harness, filename: str, disposition: str
) -> None:
    alice = await make_user(harness, "alice")
    media_id = await upload_ok(
        harness, alice.token, b"%PDF", content_type="application/pdf", filename=filename
    )
    resp = await harness.request("GET", f"{V3}/download/test.local/{media_id}")
    assert resp.status == 200
    assert resp.headers["Content-Disposition"] == disposition
    assert "X-Evil" not in resp.headers


async def test_unsafe_types_are_attachments_and_missing_type_is_octet_stream(
    harness: Harness,
) -> None:
    alice = await make_user(harness, "alice")
    html = await upload_ok(harness, alice.token, b"<script>", content_type="text/html")
    resp = await harness.request("GET", f"{V3}/download/test.local/{html}")
    assert resp.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert resp.headers["Content-Disposition"] == "attachment"
    untyped = await upload_ok(harness, alice.token, b"\x00\x01", content_type=None)
    resp = await harness.request("GET", f"{V3}/download/test.local/{untyped}")
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert resp.headers["Content-Disposition"] == "attachment"


async def test_empty_upload_and_head(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    empty = await upload_ok(harness, alice.token, b"", content_type="text/plain")
    resp = await harness.request("GET", f"{V3}/download/test.local/{empty}")
    assert resp.status == 200 and resp.body == b""
    media_id = await upload_ok(harness, alice.token, b"12345", content_type="text/plain")
    resp = await harness.request("HEAD", f"{V3}/download/test.local/{media_id}")
    assert resp.status == 200
    assert resp.headers["Content-Length"] == "5"
    assert resp.body == b""


async def test_legacy_r0_prefix(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    resp = await harness.request("POST", "/_matrix/media/r0/upload", body=b"r0", token=alice.token)
    media_id = resp.json["content_uri"].rsplit("/", 1)[1]
    resp = await harness.request("GET", f"/_matrix/media/r0/download/test.local/{media_id}")
    assert resp.body == b"r0"


async def test_files_are_sharded_under_the_media_store(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    media_id = await upload_ok(harness, alice.token, b"sharded")
    store = harness.hs.config.media_store_path
    path = store / "local_content" / media_id[:2] / media_id[2:4] / media_id[4:]
    assert path.read_bytes() == b"sharded"
    assert _files_under(store / "tmp") == []


async def test_upload_needs_a_token(harness: Harness) -> None:
    for method, path in (("POST", f"{V3}/upload"), ("POST", "/_matrix/media/v1/create")):
        resp = await harness.request(method, path, body=b"x")
        assert resp.status == 401
        assert resp.json["errcode"] == "M_MISSING_TOKEN"


async def test_authenticated_endpoints_need_a_token(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    media_id = await upload_ok(harness, alice.token, b"x")
    for path in (
        f"{V1}/download/test.local/{media_id}",
        f"{V1}/download/test.local/{media_id}/name.bin",
        f"{V1}/thumbnail/test.local/{media_id}?width=32&height=32",
        f"{V1}/config",
        f"{V3}/config",
    ):
        resp = await harness.request("GET", path)
        assert resp.status == 401, path
        assert resp.json["errcode"] == "M_MISSING_TOKEN"
        resp = await harness.request("GET", path, token="bogus")
        assert resp.status == 401, path
        assert resp.json["errcode"] == "M_UNKNOWN_TOKEN"


async def test_unknown_remote_and_malformed_media_are_not_found(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    media_id = await upload_ok(harness, alice.token, b"x")
    for prefix, token in ((V3, None), (V1, alice.token)):
        for path in (
            f"{prefix}/download/test.local/NoSuchMediaIdHereAtAll",
            f"{prefix}/download/other.server/{media_id}",
            f"{prefix}/download/test.local/..%2F..%2Fhs.db",
            f"{prefix}/download/test.local/a.b",
            f"{prefix}/thumbnail/test.local/NoSuchMediaIdHereAtAll?width=32&height=32",
            f"{prefix}/thumbnail/other.server/{media_id}?width=32&height=32",
        ):
            resp = await harness.request("GET", path, token=token)
            assert resp.status == 404, path
            assert resp.json["errcode"] == "M_NOT_FOUND", path


async def test_config(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    for path in (f"{V3}/config", f"{V1}/config"):
        resp = await harness.request("GET", path, token=alice.token)
        assert resp.status == 200
        assert resp.json == {"m.upload.size": harness.hs.config.max_upload_size}


async def test_url_previews_are_not_offered(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    for path in (f"{V1}/preview_url?url=https://example.org", f"{V3}/preview_url?url=x"):
        resp = await harness.request("GET", path, token=alice.token)
        assert resp.status == 404
        assert resp.json["errcode"] == "M_UNRECOGNIZED"


async def test_bad_upload_parameters(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    resp = await harness.request(
        "POST", f"{V3}/upload?filename=a%00b", body=b"x", token=alice.token
    )
    assert resp.status == 400
    assert resp.json["errcode"] == "M_INVALID_PARAM"


async def test_download_timeout_must_be_an_integer(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    media_id = await upload_ok(harness, alice.token, b"x")
    resp = await harness.request("GET", f"{V3}/download/test.local/{media_id}?timeout_ms=soon")
    assert resp.status == 400
    assert resp.json["errcode"] == "M_INVALID_PARAM"


@pytest.fixture
async def small(make_hs_config: Callable[..., HomeServerConfig]) -> AsyncIterator[Harness]:
    h = await start_harness([make_hs_config(max_upload_size=1000)])
    yield h
    await h.close()


async def test_upload_over_max_upload_size_is_413(small: Harness) -> None:
    alice = await make_user(small, "alice")
    resp = await upload(small, alice.token, b"x" * 1001)
    assert resp.status == 413
    assert resp.json["errcode"] == "M_TOO_LARGE"
    assert (await upload(small, alice.token, b"x" * 1000)).status == 200
    assert _files_under(small.hs.config.media_store_path / "tmp") == []


async def test_chunked_upload_over_max_upload_size_is_413(small: Harness) -> None:
    """No Content-Length: the size is only known while reading; the partial file goes."""
    alice = await make_user(small, "alice")

    async def body() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"y" * 400

    resp = await small.client.post(
        f"{V3}/upload",
        data=body(),
        headers={"Host": "test.local", "Authorization": f"Bearer {alice.token}"},
    )
    assert resp.status == 413
    assert (await resp.json())["errcode"] == "M_TOO_LARGE"
    assert _files_under(small.hs.config.media_store_path / "tmp") == []
    assert _files_under(small.hs.config.media_store_path / "local_content") == []


async def test_media_survives_a_restart_and_stale_temp_files_are_removed(
    harness: Harness,
) -> None:
    alice = await make_user(harness, "alice")
    media_id = await upload_ok(harness, alice.token, b"kept", content_type="text/plain")
    tmp = harness.hs.config.media_store_path / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "upload-crashed").write_bytes(b"half a fi")
    await harness.restart()
    assert not (tmp / "upload-crashed").exists()
    resp = await harness.request("GET", f"{V3}/download/test.local/{media_id}")
    assert resp.status == 200 and resp.body == b"kept"


@pytest.fixture
async def two(make_hs_config: Callable[..., HomeServerConfig]) -> AsyncIterator[Harness]:
    h = await start_harness([make_hs_config("a.test"), make_hs_config("b.test")])
    yield h
    await h.close()


async def test_tenants_do_not_serve_each_others_media(two: Harness) -> None:
    alice = await make_user(two, "alice", host="a.test")
    bob = await make_user(two, "bob", host="b.test")
    resp = await upload(two, alice.token, b"secret of a", host="a.test")
    assert resp.json["content_uri"].startswith("mxc://a.test/")
    media_id = resp.json["content_uri"].rsplit("/", 1)[1]
    ok = await two.request("GET", f"{V3}/download/a.test/{media_id}", host="a.test")
    assert ok.status == 200 and ok.body == b"secret of a"
    for server in ("a.test", "b.test"):
        resp = await two.request("GET", f"{V3}/download/{server}/{media_id}", host="b.test")
        assert resp.status == 404
        resp = await two.request(
            "GET", f"{V1}/download/{server}/{media_id}", host="b.test", token=bob.token
        )
        assert resp.status == 404
    # A's token means nothing to B.
    resp = await two.request(
        "GET", f"{V1}/download/a.test/{media_id}", host="b.test", token=alice.token
    )
    assert resp.status == 401
    a_store = two.servers["a.test"].config.media_store_path
    b_store = two.servers["b.test"].config.media_store_path
    assert a_store != b_store
    assert _files_under(b_store / "local_content") == []
