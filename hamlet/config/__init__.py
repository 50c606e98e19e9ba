"""Hamlet's configuration: YAML (Synapse key names) into typed, immutable objects."""

from hamlet.config.default import generate_default_config
from hamlet.config.errors import ConfigError
from hamlet.config.homeserver import load_config, validate_config, validate_server_name
from hamlet.config.model import (
    DatabaseConfig,
    FederationConfig,
    FederationTransportConfig,
    HomeServerConfig,
    HostConfig,
    InviteRateLimits,
    JoinRateLimits,
    LimitsConfig,
    ListenerConfig,
    LoginRateLimits,
    PasswordConfig,
    PresenceConfig,
    RateLimitConfig,
    ResourceConfig,
    ServerNoticesConfig,
    UserDirectoryConfig,
)
from hamlet.config.tenants import load_tenant_configs

__all__ = [
    "ConfigError",
    "DatabaseConfig",
    "FederationConfig",
    "FederationTransportConfig",
    "HomeServerConfig",
    "HostConfig",
    "InviteRateLimits",
    "JoinRateLimits",
    "LimitsConfig",
    "ListenerConfig",
    "LoginRateLimits",
    "PasswordConfig",
    "PresenceConfig",
    "RateLimitConfig",
    "ResourceConfig",
    "ServerNoticesConfig",
    "UserDirectoryConfig",
    "generate_default_config",
    "load_config",
    "load_tenant_configs",
    "validate_config",
    "validate_server_name",
]
