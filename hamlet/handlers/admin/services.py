"""Builds the admin API's services: rooms, users, event reports, server notices."""

from __future__ import annotations

from hamlet.handlers.accounts.deactivation import DeactivationHandler
from hamlet.handlers.admin.event_reports import EventReportsHandler
from hamlet.handlers.admin.registration_tokens import RegistrationTokensAdmin
from hamlet.handlers.admin.rooms import AdminRoomsHandler
from hamlet.handlers.admin.server_notices import ServerNoticesHandler
from hamlet.handlers.admin.users import AdminUsersHandler
from hamlet.handlers.common.service import BuildContext
from hamlet.handlers.container import Services
from hamlet.storage.stores.admin_rooms import AdminRoomsStore
from hamlet.storage.stores.admin_users import AdminUserStore
from hamlet.storage.stores.event_reports import EventReportStore
from hamlet.storage.stores.registration_token_admin import RegistrationTokenAdminStore
from hamlet.storage.stores.server_notices import ServerNoticeStore


def build(ctx: BuildContext, s: Services) -> None:
    config, clock, db = ctx.config, ctx.clock, ctx.db
    creator = s.event_creator
    s.admin_rooms = AdminRoomsHandler(
        server_name=ctx.server_name,
        clock=clock,
        store=AdminRoomsStore(db),
        rooms=s.rooms_store,
        accounts=s.account_store,
        state=s.room_state,
        cache=s.event_cache,
        creator=creator,
        membership=s.membership,
        pipeline=s.event_pipeline,
        serializer=s.event_serializer,
        history=s.room_history_store,
        current_stream=lambda: creator.current_stream,
    )
    s.registration_token_admin = RegistrationTokensAdmin(
        clock, s.registration_token_store, RegistrationTokenAdminStore(db)
    )
    admin_user_store = AdminUserStore(db)
    s.deactivation = DeactivationHandler(
        account=s.account,
        accounts=s.account_store,
        profiles=s.profiles_store,
        erased=admin_user_store,
        rooms=s.rooms_store,
        pipeline=s.event_pipeline,
        uia=s.uia,
    )
    s.admin_users = ctx.own(
        AdminUsersHandler(
            config=config,
            clock=clock,
            store=admin_user_store,
            accounts=s.account_store,
            profiles=s.profiles_store,
            rooms=s.rooms_store,
            auth=s.auth,
            devices=s.devices,
            account=s.account,
            registration=s.registration,
            deactivation=s.deactivation,
            profile=s.profile,
            overrides=s.ratelimit_overrides,
        )
    )
    s.event_reports = EventReportsHandler(
        clock=clock,
        store=EventReportStore(db),
        room_reader=s.room_reader,
        state=s.room_state,
        events=s.events_store,
    )
    s.server_notices = ServerNoticesHandler(
        config=config,
        clock=clock,
        store=ServerNoticeStore(db),
        accounts=s.account_store,
        profiles=s.profiles_store,
        rooms=s.rooms_store,
        pipeline=s.event_pipeline,
        account_data=s.account_data,
    )
