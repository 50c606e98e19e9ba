from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from hamlet.config import HomeServerConfig
from tests.support.harness import Harness
from tests.sync.helpers import fast_harness


@pytest.fixture
async def h(make_hs_config: Callable[..., HomeServerConfig]) -> AsyncIterator[Harness]:
    async with fast_harness(make_hs_config) as h:
        yield h
