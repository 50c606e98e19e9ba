"""A tenant provisioned through the host's control API carries its own bridges."""

from __future__ import annotations

from tests.appservice.fake_bridge import FakeBridge
from tests.appservice.support import AS_TOKEN, HS_TOKEN, V3, registration
from tests.host.test_tenants import MakeHost, make_host

__all__ = ["make_host"]


async def test_provisioned_tenant_with_a_bridge(make_host: MakeHost) -> None:
    bridge = await FakeBridge(HS_TOKEN).start()
    try:
        host = await make_host()
        reg = registration(bridge.url, server="bridged.test")
        status, body = await host.control(
            "POST", "/tenants", {"server_name": "bridged.test", "config": {"app_services": [reg]}}
        )
        assert status in (200, 201), body
        status, body = await host.call(
            "bridged.test", "GET", f"{V3}/account/whoami", token=AS_TOKEN
        )
        assert status == 200 and body["user_id"] == "@bridgebot:bridged.test", body
        # The main homeserver knows nothing of the tenant's bridge.
        status, _ = await host.call("main.test", "GET", f"{V3}/account/whoami", token=AS_TOKEN)
        assert status == 401
        ghost = {"type": "m.login.application_service", "username": "bridge_alice"}
        status, body = await host.call(
            "bridged.test", "POST", f"{V3}/register", ghost, token=AS_TOKEN
        )
        assert status == 200, body
        status, body = await host.call(
            "bridged.test",
            "POST",
            f"{V3}/createRoom?user_id=@bridge_alice:bridged.test",
            {},
            token=AS_TOKEN,
        )
        assert status == 200, body
        created = await bridge.wait_for_event(lambda e: e["type"] == "m.room.create")
        assert created["room_id"] == body["room_id"]

        bad = {**reg, "namespaces": {"users": [{"exclusive": True, "regex": "("}]}}
        status, body = await host.control(
            "POST",
            "/tenants",
            {"server_name": "bridged-bad.test", "config": {"app_services": [bad]}},
        )
        assert status == 400
        assert any("app_services[0].namespaces.users[0].regex" in e for e in body["errors"]), body
    finally:
        await bridge.close()
