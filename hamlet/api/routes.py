"""The process-wide route table: every API module registers its endpoints here."""

from __future__ import annotations

from hamlet.api.client import versions
from hamlet.api.router import Router


def build_router() -> Router:
    router = Router()
    for module in (versions,):
        module.register(router)
    return router
