"""A harness without rate limits for the history/relations/directory/profile tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from tests.support.harness import Harness, start_harness

FAST = {"per_second": 10000, "burst_count": 10000}
NO_LIMITS: dict[str, Any] = {
    "rc_message": FAST,
    "rc_joins": {"local": FAST, "remote": FAST},
    "rc_joins_per_room": FAST,
    "rc_invites": {"per_room": FAST, "per_user": FAST, "per_issuer": FAST},
}


async def unlimited_harness(
    make_hs_config: Callable[..., Any], **overrides: Any
) -> AsyncIterator[Harness]:
    h = await start_harness([make_hs_config(**{**NO_LIMITS, **overrides})])
    try:
        yield h
    finally:
        await h.close()
