from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hamlet.config import HomeServerConfig
from tests.support.harness import Harness, start_harness

MakeConfig = Callable[..., HomeServerConfig]

# Limits high enough that only the rate-limit tests ever meet them.
GENEROUS = {"per_second": 1000, "burst_count": 1000}
OPEN_REGISTRATION: dict[str, Any] = {
    "enable_registration": True,
    "enable_registration_without_verification": True,
    "rc_registration": GENEROUS,
    "rc_login": {"address": GENEROUS, "account": GENEROUS, "failed_attempts": GENEROUS},
}


@pytest.fixture
async def h(make_hs_config: MakeConfig) -> AsyncIterator[Harness]:
    """One homeserver with open registration and generous rate limits."""
    harness = await start_harness([make_hs_config(**OPEN_REGISTRATION)])
    yield harness
    await harness.close()
