"""A Megolm-encrypted conversation between a matrix-nio client on Hamlet and
one on Synapse 1.163.2: each claims the other's one-time keys over
federation, shares its room key in an Olm-encrypted to-device message, and
each decrypts what the other sent. A new device on the Hamlet side is then
seen by the Synapse client."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    LoginResponse,
    MegolmEvent,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)

from hamlet.config import HomeServerConfig
from hamlet.homeserver import HomeServer
from hamlet.host.process import HostProcess
from tests.interop.synapse import Synapse, free_port
from tests.interop.test_synapse_e2ee import SYNC_TIMEOUTS_MS, on_synapse, synapse_user
from tests.support.tls import SelfSigned, make_self_signed

MakeConfig = Callable[..., HomeServerConfig]
PASSWORD = "interop-pw-1"


@pytest.fixture
async def hamlet_url(
    make_hs_config: MakeConfig, tmp_path: Path
) -> AsyncIterator[tuple[str, HomeServer]]:
    """A Hamlet tenant serving the client and federation APIs on one TLS listener."""
    tls: SelfSigned = make_self_signed(tmp_path / "tls")
    port = free_port()
    server_name = f"127.0.0.1:{port}"
    config = make_hs_config(
        server_name,
        listeners=[{"port": port, "tls": True, "resources": [{"names": ["client", "federation"]}]}],
        tls_certificate_path=str(tls.certificate),
        tls_private_key_path=str(tls.private_key),
        federation_verify_certificates=False,
        federation_ip_range_blacklist=[],
    )
    process = HostProcess([config])
    await process.start()
    tenant = process.registry.get_tenant(server_name)
    assert tenant is not None and tenant.hs is not None
    tenant.hs.federation_sender.attach_transport(tenant.hs.federation_client)
    yield f"https://{server_name}", tenant.hs
    await process.stop()


def store_dir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


async def nio_client(url: str, user_id: str, store: Path) -> AsyncClient:
    client = AsyncClient(
        url,
        user_id,
        store_path=str(store),
        config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True),
        ssl=False,
    )
    login = await client.login(PASSWORD)
    assert isinstance(login, LoginResponse), login
    if client.should_upload_keys:
        await client.keys_upload()
    return client


async def catch_up(client: AsyncClient) -> SyncResponse:
    # A new timeout each time: Synapse answers a repeated /sync from a cache.
    sync = await client.sync(timeout=next(SYNC_TIMEOUTS_MS), full_state=client.next_batch is None)
    assert isinstance(sync, SyncResponse), sync
    if client.should_query_keys:
        await client.keys_query()
    return sync


async def received(client: AsyncClient, room_id: str, body: str) -> bool:
    """Sync until `body` arrives decrypted in the room (real time, bounded)."""
    pending: list[MegolmEvent] = []
    for _ in range(150):
        sync = await catch_up(client)
        room = sync.rooms.join.get(room_id)
        events: list[Any] = list(room.timeline.events) if room else []
        for event in [*pending, *events]:
            if isinstance(event, MegolmEvent):
                decrypted = client.decrypt_event(event)
                if isinstance(decrypted, RoomMessageText) and decrypted.body == body:
                    return True
                if event not in pending:
                    pending.append(event)
            elif isinstance(event, RoomMessageText) and event.body == body:
                assert event.decrypted, "the message was sent in clear"
                return True
        await asyncio.sleep(0.1)
    return False


async def send(client: AsyncClient, room_id: str, body: str) -> None:
    await catch_up(client)
    sent = await client.room_send(
        room_id,
        "m.room.message",
        {"msgtype": "m.text", "body": body},
        ignore_unverified_devices=True,
    )
    assert isinstance(sent, RoomSendResponse), sent


async def test_megolm_between_nio_clients_on_hamlet_and_synapse(
    hamlet_url: tuple[str, HomeServer], synapse: Synapse, tmp_path: Path
) -> None:
    url, hs = hamlet_url
    suffix = secrets.token_hex(4)
    sy = await synapse_user(synapse, f"nia{suffix}")
    alias = f"secret{suffix}"
    status, made = await on_synapse(
        synapse,
        "POST",
        "/createRoom",
        {
            "preset": "public_chat",
            "room_alias_name": alias,
            "room_version": "10",
            "initial_state": [
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            ],
        },
        sy.token,
    )
    assert status == 200, made
    room_id = made["room_id"]
    ham_id = await hs.registration.register_user(f"nio{suffix}", PASSWORD)
    them = await nio_client(
        f"http://127.0.0.1:{synapse.client_port}", sy.user_id, store_dir(tmp_path, "synapse-store")
    )
    us = await nio_client(url, ham_id, store_dir(tmp_path, "hamlet-store"))
    try:
        joined = await us.join(f"#{alias}:{synapse.server_name}")
        assert isinstance(joined, JoinResponse), joined
        await catch_up(us)
        await catch_up(them)

        await send(us, room_id, "sealed on hamlet")
        assert await received(them, room_id, "sealed on hamlet")
        await send(them, room_id, "sealed on synapse")
        assert await received(us, room_id, "sealed on synapse")

        # A second Hamlet device: the Synapse client hears of it and shares
        # its next room key with it too.
        second = await nio_client(url, ham_id, store_dir(tmp_path, "hamlet-store-2"))
        try:
            for _ in range(150):
                await catch_up(them)
                devices = {d.id for d in them.device_store.active_user_devices(ham_id)}
                if second.device_id in devices:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("Synapse's client never saw the new device")
            await catch_up(second)
            await send(them, room_id, "for both devices")
            assert await received(second, room_id, "for both devices")
        finally:
            await second.close()
    finally:
        await us.close()
        await them.close()
