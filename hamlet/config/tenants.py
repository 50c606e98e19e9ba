"""Resolving the ``tenants`` key: further homeserver configs run in this process."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from hamlet.config.errors import ConfigError
from hamlet.config.homeserver import load_config, server_name_host
from hamlet.config.model import DEFAULT_LISTENERS, HomeServerConfig, TracingConfig

TENANT_SUFFIXES = (".yaml", ".yml")


def routing_hosts(config: HomeServerConfig) -> frozenset[str]:
    """The Host header values (lower case, port stripped) that name this homeserver:
    its server name's host and its public_baseurl's."""
    hosts = {_host_key(server_name_host(config.server_name))}
    baseurl_host = urlsplit(config.public_baseurl).hostname
    if baseurl_host:
        hosts.add(_host_key(baseurl_host))
    return frozenset(hosts)


def _host_key(host: str) -> str:
    host = host.lower()
    # As a Host header writes an IPv6 literal.
    return f"[{host}]" if ":" in host else host


def tenant_config_files(main: HomeServerConfig) -> tuple[list[Path], list[str]]:
    """The tenant config files named by ``main.tenants``, in order, and any errors.

    A directory contributes its ``*.yaml``/``*.yml`` files (not hidden ones),
    sorted by name. Duplicates and the main config file itself are skipped.
    """
    files: list[Path] = []
    errors: list[str] = []
    seen: set[Path] = set()
    if main.config_path is not None:
        seen.add(main.config_path.absolute())
    for entry in main.tenants:
        if entry.is_dir():
            candidates = sorted(
                p
                for p in entry.iterdir()
                if p.suffix in TENANT_SUFFIXES and not p.name.startswith(".") and p.is_file()
            )
        elif entry.is_file():
            candidates = [entry]
        else:
            errors.append(f"{entry}: tenant config file or directory does not exist")
            continue
        for p in candidates:
            p = p.absolute()
            if p not in seen:
                seen.add(p)
                files.append(p)
    return files, errors


def load_tenant_configs(
    main: HomeServerConfig, *, warnings: list[str] | None = None
) -> list[HomeServerConfig]:
    """Load every tenant config listed (directly or by directory) in ``main.tenants``.

    Raises :class:`ConfigError` with all problems, each prefixed by the file
    it concerns. Warnings, also prefixed by file, are appended to
    ``warnings`` if given. Checks that no two homeservers (the main one
    included) share a server_name, database, signing key or media store.
    """
    files, errors = tenant_config_files(main)
    configs: list[tuple[Path | None, HomeServerConfig]] = [(main.config_path, main)]
    for path in files:
        try:
            config, file_warnings = load_config(path)
        except ConfigError as e:
            errors.extend(e2 if e2.startswith(f"{path}:") else f"{path}: {e2}" for e2 in e.errors)
            continue
        if warnings is not None:
            warnings.extend(f"{path}: {w}" for w in file_warnings)
            warnings.extend(f"{path}: {w}" for w in _process_keys_in_tenant(config))
        if config.tenants:
            errors.append(f"{path}: tenants: only the main config may list tenants")
        configs.append((path, config))

    errors.extend(_clashes(configs))
    if errors:
        raise ConfigError(errors)
    return [c for _, c in configs[1:]]


def _process_keys_in_tenant(config: HomeServerConfig) -> list[str]:
    """The keys that only the main config's copy of takes effect."""
    ignored = []
    if config.listeners and config.listeners != DEFAULT_LISTENERS:
        ignored.append("listeners")
    if config.log_config is not None:
        ignored.append("log_config")
    if config.pid_file is not None:
        ignored.append("pid_file")
    if config.opentracing != TracingConfig():
        ignored.append("opentracing")
    if config.host is not None:
        ignored.append("host")
    return [
        f"unsupported key '{key}' has no effect: in a tenant's config it is the main "
        "config's that counts (one process, one set of listeners and logs)"
        for key in ignored
    ]


def _clashes(configs: list[tuple[Path | None, HomeServerConfig]]) -> list[str]:
    errors: list[str] = []
    owners: dict[tuple[str, object], Path | None] = {}

    def where(p: Path | None) -> str:
        return str(p) if p is not None else "the main config"

    for path, c in configs:
        db = c.database
        if db.is_sqlite:
            db_key: object = db.sqlite_path() if db.sqlite_path() != ":memory:" else None
        else:
            kw = db.pg_dsn_kwargs()
            db_key = (kw.get("host"), kw.get("port"), kw.get("database"), db.pg_schema)
        claims: list[tuple[str, str, object]] = [
            ("server_name", "server_name", c.server_name),
            ("database", "database", db_key),
            ("signing_key_path", "signing_key_path", c.signing_key_path),
            ("media_store_path", "media_store_path", c.media_store_path),
        ]
        # Two homeservers answering one Host would let one take the other's
        # requests (a duplicate server_name already says so).
        hosts = [("host", "public_baseurl", host) for host in sorted(routing_hosts(c))]
        named_twice = False
        for kind, key, value in [*claims, *hosts]:
            if value is None or (kind == "host" and named_twice):
                continue
            other = owners.setdefault((kind, value), path)
            if other != path:
                errors.append(f"{where(path)}: {key}: already used by {where(other)}")
                named_twice = named_twice or kind == "server_name"
    return errors
