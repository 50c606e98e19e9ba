"""The rate limiters guarding login and registration, one set per homeserver."""

from __future__ import annotations

from hamlet.config import HomeServerConfig
from hamlet.config.model import RateLimitConfig
from hamlet.handlers.common import ratelimit
from hamlet.handlers.common.ratelimit import RatelimiterSet
from hamlet.runtime.clock import Clock


class AccountRatelimiters(RatelimiterSet):
    """`rc_login` (address, account, failed_attempts), `rc_registration` and
    `rc_profile` (profile lookups, per user or per address when anonymous)."""

    def __init__(self, clock: Clock, config: HomeServerConfig) -> None:
        def make(name: str, rc: RateLimitConfig) -> ratelimit.Ratelimiter:
            return ratelimit.Ratelimiter(
                clock, name=name, per_second=rc.per_second, burst_count=rc.burst_count
            )

        self.login_address = make("login_address", config.rc_login.address)
        self.login_account = make("login_account", config.rc_login.account)
        self.login_failed = make("login_failed_attempts", config.rc_login.failed_attempts)
        # Wrong passwords given to user-interactive auth (a stolen access token
        # guessing the password to take the account over) count against the same
        # config as failed logins, in a bucket of their own, as in Synapse.
        self.uia_failed = make("uia_failed_attempts", config.rc_login.failed_attempts)
        self.registration = make("registration", config.rc_registration)
        self.token_validity = make(
            "registration_token_validity", config.rc_registration_token_validity
        )
        self.profile_lookup = make("rc_profile", config.rc_profile)
        self._limiters = (
            self.profile_lookup,
            self.login_address,
            self.login_account,
            self.login_failed,
            self.uia_failed,
            self.registration,
            self.token_validity,
        )
