"""The `hamlet` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from hamlet.config import ConfigError, generate_default_config, load_config, load_tenant_configs
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


def cmd_serve(args: argparse.Namespace) -> int:
    from hamlet.host.process import HostProcess

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
    setup_logging(main_config.log_config)
    for warning in warnings:
        logger.warning("config: %s", warning)
    asyncio.run(HostProcess(configs).serve_forever())
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
    serve.set_defaults(func=cmd_serve)

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
