"""A real Matrix client (matrix-nio) against a real listener."""

from __future__ import annotations

from nio import (
    AsyncClient,
    AsyncClientConfig,
    LoginResponse,
    LogoutResponse,
    RegisterResponse,
    WhoamiError,
    WhoamiResponse,
)

from tests.support.harness import Harness


async def test_nio_register_login_whoami_logout(h: Harness) -> None:
    # No DNS for test.local: connect to the listener's address and name the
    # tenant in the Host header, as a reverse proxy would.
    base = f"http://127.0.0.1:{h.client.server.port}"
    config = AsyncClientConfig(custom_headers={"Host": "test.local"})
    client = AsyncClient(base, "niouser", config=config)
    try:
        reg = await client.register("niouser", "pw-nio-12345", device_name="nio device")
        assert isinstance(reg, RegisterResponse), reg
        assert reg.user_id == "@niouser:test.local"

        client.user = "niouser"
        resp = await client.login("pw-nio-12345", device_name="nio login")
        assert isinstance(resp, LoginResponse), resp
        assert resp.user_id == "@niouser:test.local"
        assert client.access_token == resp.access_token

        me = await client.whoami()
        assert isinstance(me, WhoamiResponse), me
        assert me.user_id == "@niouser:test.local"
        assert me.device_id == resp.device_id

        out = await client.logout()
        assert isinstance(out, LogoutResponse), out
        client.access_token = resp.access_token
        gone = await client.whoami()
        assert isinstance(gone, WhoamiError)
        assert gone.status_code == "M_UNKNOWN_TOKEN"
    finally:
        await client.close()
