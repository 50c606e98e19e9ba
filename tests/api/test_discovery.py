from __future__ import annotations

from tests.support.harness import Harness


async def test_versions(harness: Harness) -> None:
    resp = await harness.request("GET", "/_matrix/client/versions")
    assert resp.status == 200
    assert "v1.1" in resp.json["versions"]
