"""Creating users directly on a test homeserver."""

from __future__ import annotations

from dataclasses import dataclass

from tests.support.harness import Harness


@dataclass(frozen=True)
class TestUser:
    __test__ = False  # not a pytest test class

    user_id: str
    token: str
    device_id: str


async def make_user(
    harness: Harness, localpart: str, *, admin: bool = False, host: str | None = None
) -> TestUser:
    hs = harness.servers[host] if host else harness.hs
    user_id = await hs.registration.register_user(localpart, "password", admin=admin)
    login = await hs.registration.create_login(user_id, None, None)
    return TestUser(user_id, login["access_token"], login["device_id"])
