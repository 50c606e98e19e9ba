"""Builds the federation services: the keyring and the key notary."""

from __future__ import annotations

from hamlet.handlers.common.service import BuildContext
from hamlet.handlers.container import Services
from hamlet.handlers.federation.keyring import KeyFetchTransport, Keyring
from hamlet.handlers.federation.notary import KeyNotary
from hamlet.storage.stores.server_keys import ServerKeyStore


def build(ctx: BuildContext, s: Services, transport: KeyFetchTransport | None = None) -> None:
    """`transport` is the federation client the keyring fetches with; without
    one only our own keys and those already stored are known."""
    s.keyring = ctx.own(
        Keyring(
            config=ctx.config,
            clock=ctx.clock,
            signing_key=ctx.signing_key,
            store=ServerKeyStore(ctx.db),
            transport=transport,
        )
    )
    s.key_notary = ctx.own(
        KeyNotary(
            server_name=ctx.server_name,
            clock=ctx.clock,
            signing_key=ctx.signing_key,
            keyring=s.keyring,
        )
    )
