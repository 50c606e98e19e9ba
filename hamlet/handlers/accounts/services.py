"""Builds the accounts services: tokens, devices, login, registration, profiles."""

from __future__ import annotations

from hamlet.handlers.accounts.account import AccountHandler
from hamlet.handlers.accounts.auth import AuthHandler
from hamlet.handlers.accounts.devices import DeviceHandler
from hamlet.handlers.accounts.login import LoginHandler
from hamlet.handlers.accounts.openid import OpenIdHandler
from hamlet.handlers.accounts.passwords import PasswordHasher
from hamlet.handlers.accounts.profile import ProfileHandler
from hamlet.handlers.accounts.ratelimits import AccountRatelimiters
from hamlet.handlers.accounts.register import RegistrationHandler
from hamlet.handlers.accounts.shared_secret import SharedSecretRegistration
from hamlet.handlers.accounts.uia import UiaHandler
from hamlet.handlers.accounts.uia_stages import stage_checkers
from hamlet.handlers.accounts.user_directory import UserDirectoryHandler
from hamlet.handlers.common.service import BuildContext
from hamlet.handlers.container import Services
from hamlet.handlers.rooms.auto_join import AutoJoinHandler
from hamlet.storage.stores.openid import OpenIdStore
from hamlet.storage.stores.registration_tokens import RegistrationTokenStore


def build(ctx: BuildContext, s: Services) -> None:
    config, clock = ctx.config, ctx.clock
    s.registration_token_store = RegistrationTokenStore(ctx.db)
    s.password_hasher = PasswordHasher(
        pepper=config.password_config.pepper,
        rounds=config.bcrypt_rounds,
        tenant=config.server_name,
        max_concurrent=config.limits.max_concurrent_password_hashes,
    )
    s.account_ratelimiters = ctx.own(AccountRatelimiters(clock, config))
    s.auth = ctx.own(
        AuthHandler(
            clock,
            s.device_store,
            session_lifetime_ms=config.session_lifetime,
            app_services=s.app_services,
            accounts=s.account_store,
        )
    )
    s.devices = DeviceHandler(
        clock,
        s.device_store,
        s.auth,
        s.device_lists,
        max_devices=config.limits.max_devices_per_user,
    )
    s.login = LoginHandler(
        config, s.account_store, s.password_hasher, s.devices, s.account_ratelimiters
    )
    checkers = stage_checkers(
        clock=clock,
        server_name=ctx.server_name,
        login=s.login,
        limits=s.account_ratelimiters,
        tokens=s.registration_token_store,
    )
    s.uia = ctx.own(UiaHandler(clock, checkers))
    s.openid = ctx.own(OpenIdHandler(clock, OpenIdStore(ctx.db), ctx.server_name))
    auto_join = (
        AutoJoinHandler(config=config, directory=s.directory, pipeline=s.event_pipeline)
        if config.auto_join_rooms
        else None
    )
    s.registration = RegistrationHandler(
        config,
        clock,
        s.account_store,
        s.registration_token_store,
        s.password_hasher,
        s.devices,
        s.uia,
        s.account_ratelimiters,
        after_registration=auto_join.on_registered if auto_join is not None else None,
        app_services=s.app_services,
    )
    s.account = AccountHandler(config, s.account_store, s.password_hasher, s.devices, s.auth, s.uia)
    s.shared_secret_registration = ctx.own(SharedSecretRegistration(clock, config, s.registration))
    s.profile = ProfileHandler(
        config=config,
        accounts=s.account_store,
        profiles=s.profiles_store,
        rooms=s.rooms_store,
        pipeline=s.event_pipeline,
        limits=s.account_ratelimiters,
        app_service_queries=s.app_service_queries,
    )
    s.user_directory = UserDirectoryHandler(
        config=config, store=s.user_directory_store, rooms=s.rooms_store, state=s.room_state
    )
