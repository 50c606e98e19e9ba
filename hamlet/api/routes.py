"""The process-wide route table: every API module registers its endpoints here."""

from __future__ import annotations

from hamlet.api.admin import devices as admin_devices
from hamlet.api.admin import event_reports as admin_event_reports
from hamlet.api.admin import federation as admin_federation
from hamlet.api.admin import media as admin_media
from hamlet.api.admin import register as admin_register
from hamlet.api.admin import registration_tokens as admin_registration_tokens
from hamlet.api.admin import rooms as admin_rooms
from hamlet.api.admin import server_notices as admin_server_notices
from hamlet.api.admin import users as admin_users
from hamlet.api.client import (
    account,
    account_data,
    appservice,
    capabilities,
    devices,
    directory,
    filter,
    keys,
    login,
    membership,
    messages,
    openid,
    presence,
    profile,
    push_rules,
    pushers,
    receipts,
    register,
    relations,
    room_keys,
    rooms,
    search,
    sliding_sync,
    spaces,
    sync,
    to_device,
    typing,
    user_directory,
    versions,
)
from hamlet.api.federation import devices as federation_devices
from hamlet.api.federation import joins as federation_joins
from hamlet.api.federation import keys as federation_keys
from hamlet.api.federation import knocks as federation_knocks
from hamlet.api.federation import memberships as federation_memberships
from hamlet.api.federation import openid as federation_openid
from hamlet.api.federation import queries as federation_queries
from hamlet.api.federation import room_reads as federation_room_reads
from hamlet.api.federation import send as federation_send
from hamlet.api.federation import spaces as federation_spaces
from hamlet.api.federation import version as federation_version
from hamlet.api.federation import wellknown as federation_wellknown
from hamlet.api.media import content as media_content
from hamlet.api.router import Router


def build_router() -> Router:
    router = Router()
    for module in (
        versions,
        rooms,
        directory,
        profile,
        user_directory,
        messages,
        search,
        relations,
        membership,
        register,
        login,
        appservice,
        account,
        devices,
        capabilities,
        admin_register,
        admin_users,
        admin_devices,
        admin_registration_tokens,
        admin_event_reports,
        admin_server_notices,
        admin_rooms,
        admin_media,
        admin_federation,
        media_content,
        spaces,
        typing,
        receipts,
        presence,
        account_data,
        push_rules,
        pushers,
        to_device,
        filter,
        sync,
        sliding_sync,
        keys,
        room_keys,
        openid,
        federation_openid,
        federation_keys,
        federation_version,
        federation_wellknown,
        federation_send,
        federation_queries,
        federation_room_reads,
        federation_joins,
        federation_knocks,
        federation_devices,
        federation_spaces,
        federation_memberships,
    ):
        module.register(router)
    return router
