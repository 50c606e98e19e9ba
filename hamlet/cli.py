"""The `hamlet` command."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import sys
from pathlib import Path

from hamlet.config import (
    ConfigError,
    HomeServerConfig,
    generate_default_config,
    load_config,
    load_tenant_configs,
)
from hamlet.host import control_client as tenant_commands
from hamlet.host.logging_setup import setup_logging

logger = logging.getLogger("hamlet.cli")


def _ensure_config(config_path: Path, server_name: str, data_dir: Path) -> None:
    if config_path.exists():
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(generate_default_config(server_name, data_dir.resolve()))
    config_path.chmod(0o600)
    print(f"Wrote a default config to {config_path}", file=sys.stderr)


def import_serving_code() -> None:
    """Import what serving needs with the cycle collector off, then freeze it.

    The serving code is ~90,000 objects that live as long as the process
    (modules, classes, functions): collecting while importing them only
    walks them again and again (about a tenth of the import's CPU), and once
    frozen no later full collection walks them either. Done before any
    homeserver exists, so nothing a hibernating tenant frees is frozen.
    """
    gc.disable()
    try:
        import hamlet.host.process  # noqa: F401

        gc.freeze()
    finally:
        gc.enable()


def cmd_serve(args: argparse.Namespace) -> int:
    # Before anything is opened: a hibernated tenant's memory goes back to
    # the system only from the system allocator (see hamlet.runtime.memory).
    from hamlet.runtime.memory import reexec_on_system_malloc

    reexec_on_system_malloc()
    import_serving_code()
    from hamlet.host.process import HostProcess, StartupError

    config_path = Path(args.config)
    if args.generate_config:
        _ensure_config(config_path, args.server_name, Path(args.data_dir))
    try:
        main_config, warnings = load_config(config_path)
        configs = [main_config, *load_tenant_configs(main_config, warnings=warnings)]
    except ConfigError as e:
        for error in e.errors:
            print(f"{config_path}: {error}", file=sys.stderr)
        return 1
    # Nothing the server writes (logs, rotated logs, media) is for other
    # users of the machine; the database and keys are 0600 on top of this.
    os.umask(0o027)
    setup_logging(main_config.log_config)
    for warning in warnings:
        logger.warning("config: %s", warning)
    if args.daemonize:
        return _serve_daemonized(main_config, configs)
    try:
        asyncio.run(HostProcess(configs).serve_forever())
    except StartupError as e:
        # What failed is in the log already; the operator gets one line, not a traceback.
        print(f"hamlet serve: {e}", file=sys.stderr)
        return 1
    return 0


def _serve_daemonized(main_config: HomeServerConfig, configs: list[HomeServerConfig]) -> int:
    from hamlet.host.daemon import DaemonError, daemonize
    from hamlet.host.process import HostProcess, StartupError

    if main_config.pid_file is None:
        print("--daemonize needs pid_file in the config", file=sys.stderr)
        return 1
    if main_config.log_config is None:
        print("warning: without log_config the daemon's logs are discarded", file=sys.stderr)
    try:
        daemon = daemonize(main_config.pid_file)
    except DaemonError as e:
        print(e, file=sys.stderr)
        return 1
    try:
        asyncio.run(HostProcess(configs).serve_forever(on_started=daemon.notify_ready))
    except StartupError:
        # The waiting parent sees the daemon die and exits 1; the log says why.
        return 1
    finally:
        daemon.remove_pid_file()
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        config, warnings = load_config(path)
        load_tenant_configs(config, warnings=warnings)
    except ConfigError as e:
        for error in e.errors:
            print(f"{path}: error: {error}")
        return 1
    for warning in warnings:
        print(f"{path}: warning: {warning}")
    print(f"{path}: OK")
    return 0


def _default_url(config: HomeServerConfig) -> str:
    listener = config.listeners[0]
    host = listener.bind_addresses[0] if listener.bind_addresses else "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if listener.tls else "http"
    return f"{scheme}://{host}:{listener.port}"


def cmd_register_user(args: argparse.Namespace) -> int:
    """Create a user through the shared-secret admin API of a running server."""
    import urllib.error
    import urllib.request

    from hamlet.handlers.accounts.shared_secret import registration_mac

    path = Path(args.config)
    try:
        config, _warnings = load_config(path)
    except ConfigError as e:
        for error in e.errors:
            print(f"{path}: {error}", file=sys.stderr)
        return 1
    secret = config.registration_shared_secret
    if secret is None:
        print(f"{path}: registration_shared_secret is not set", file=sys.stderr)
        return 1
    url = (args.url or _default_url(config)).rstrip("/") + "/_synapse/admin/v1/register"
    # Without --url, name the tenant: a shared listener may serve several.
    headers = {"Content-Type": "application/json"}
    if not args.url:
        headers["Host"] = config.server_name

    def call(data: dict[str, object] | None) -> dict[str, object]:
        body = json.dumps(data).encode() if data is not None else None
        request = urllib.request.Request(url, data=body, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as resp:
            result: dict[str, object] = json.loads(resp.read())
            return result

    try:
        nonce = str(call(None)["nonce"])
        mac = registration_mac(secret, nonce, args.user, args.password, args.admin)
        result = call(
            {
                "nonce": nonce,
                "username": args.user,
                "password": args.password,
                "admin": args.admin,
                "mac": mac,
            }
        )
    except urllib.error.HTTPError as e:
        try:
            error = json.loads(e.read()).get("error", e.reason)
        except ValueError:
            error = e.reason
        print(f"Registration failed: {e.code} {error}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as e:
        print(f"Cannot reach {url}: {e}", file=sys.stderr)
        return 1
    print(f"Registered {result['user_id']}")
    return 0


async def _make_admin(config: HomeServerConfig, user: str) -> str | None:
    """Flag an existing user as a server admin; returns an error message, or None."""
    from hamlet.homeserver import HomeServer

    user_id = user if user.startswith("@") else f"@{user}:{config.server_name}"
    hs = HomeServer(config)
    try:
        await hs.setup()
        if not user_id.endswith(f":{config.server_name}"):
            return f"{user_id} is not a user of {config.server_name}"
        if await hs.account_store.get_user(user_id) is None:
            return f"No such user: {user_id}"
        await hs.account_store.set_admin(user_id, True)
        return None
    finally:
        await hs.shutdown()


def cmd_admin_make_admin(args: argparse.Namespace) -> int:
    """Make an existing user a server admin, straight in the database (no server needed).

    A running server sees it too: the admin API reads the flag afresh, and
    every other check within `TOKEN_CACHE_TTL_S`.
    """
    path = Path(args.config)
    try:
        config, _warnings = load_config(path)
    except ConfigError as e:
        for error in e.errors:
            print(f"{path}: {error}", file=sys.stderr)
        return 1
    problem = asyncio.run(_make_admin(config, args.user))
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    user_id = args.user if args.user.startswith("@") else f"@{args.user}:{config.server_name}"
    print(f"{user_id} is now a server admin")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hamlet", description="A multi-tenant Matrix homeserver")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the homeservers of a config")
    serve.add_argument("--config", "-c", default="data/homeserver.yaml")
    serve.add_argument(
        "--generate-config",
        action="store_true",
        help="write a default config (SQLite, registration closed) if the file does not exist",
    )
    serve.add_argument("--server-name", default="localhost")
    serve.add_argument("--data-dir", default="data")
    serve.add_argument(
        "--daemonize",
        "-D",
        action="store_true",
        help="detach from the terminal and write the process ID to the config's pid_file",
    )
    serve.set_defaults(func=cmd_serve)

    reg = sub.add_parser("register-user", help="create a user on a running server")
    reg.add_argument("--config", "-c", default="data/homeserver.yaml")
    reg.add_argument("--user", "-u", required=True, help="the new user's localpart")
    reg.add_argument("--password", "-p", required=True)
    reg.add_argument("--admin", action="store_true", help="make the user a server admin")
    reg.add_argument("--url", help="the server's base URL (default: its first listener)")
    reg.set_defaults(func=cmd_register_user)

    admin = sub.add_parser("admin", help="administration straight on the database")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    make_admin = admin_sub.add_parser("make-admin", help="make an existing user a server admin")
    make_admin.add_argument("user", help="a user ID or localpart")
    make_admin.add_argument("--config", "-c", default="data/homeserver.yaml")
    make_admin.set_defaults(func=cmd_admin_make_admin)

    tenant_commands.add_parser(sub)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a config file")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
