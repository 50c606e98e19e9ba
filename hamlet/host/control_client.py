"""The `hamlet tenant ...` commands: a small client of the control API."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from hamlet.config import ConfigError, load_config


class ControlClientError(Exception):
    pass


def _endpoint(args: argparse.Namespace) -> tuple[str, str]:
    """(base URL, secret) from --url/--secret, the environment, or the main config."""
    url = args.url or os.environ.get("HAMLET_CONTROL_URL")
    secret = args.secret or os.environ.get("HAMLET_CONTROL_SECRET")
    if url and secret:
        return url.rstrip("/"), secret
    try:
        config, _warnings = load_config(Path(args.config))
    except ConfigError as e:
        raise ControlClientError("; ".join(e.errors)) from None
    host = config.host
    if host is None or host.control_port is None or host.control_secret is None:
        raise ControlClientError(f"{args.config} has no host.control section")
    address = host.control_bind_address
    if address in ("0.0.0.0", "::"):
        address = "127.0.0.1"
    return url or f"http://{address}:{host.control_port}", secret or host.control_secret


def call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    # Imported here: `hamlet serve` builds this module's parsers, never its requests.
    import urllib.error
    import urllib.request

    base, secret = _endpoint(args)
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            detail = json.loads(e.read())
        except ValueError:
            detail = {"error": e.reason}
        errors = detail.get("errors") or []
        message = detail.get("error", e.reason)
        raise ControlClientError("\n".join([f"{e.code}: {message}", *errors])) from None
    except urllib.error.URLError as e:
        raise ControlClientError(f"cannot reach the control API at {base}: {e.reason}") from None


def _print_table(tenants: list[dict[str, Any]]) -> None:
    columns = (
        "server_name",
        "state",
        "idle_s",
        "requests",
        "avg_latency_ms",
        "db_time_s",
        "active_syncs",
        "users",
        "rooms",
        "memory_estimate_bytes",
    )
    rows = [["-" if t.get(c) is None else str(t[c]) for c in columns] for t in tenants]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def run(args: argparse.Namespace) -> int:
    try:
        if args.tenant_command == "add":
            overrides: dict[str, Any] = {}
            if args.tenant_config:
                loaded = yaml.safe_load(Path(args.tenant_config).read_text()) or {}
                if not isinstance(loaded, dict):
                    raise ControlClientError(f"{args.tenant_config}: must be a YAML mapping")
                overrides = loaded
            result = call(
                args, "POST", "/tenants", {"server_name": args.server_name, "config": overrides}
            )
            print(json.dumps(result, indent=2))
        elif args.tenant_command == "list":
            tenants = call(args, "GET", "/tenants")["tenants"]
            if args.json:
                print(json.dumps(tenants, indent=2))
            else:
                _print_table(tenants)
        elif args.tenant_command == "show":
            print(json.dumps(call(args, "GET", f"/tenants/{args.server_name}"), indent=2))
        elif args.tenant_command in ("suspend", "resume"):
            call(args, "POST", f"/tenants/{args.server_name}/{args.tenant_command}")
            print(f"{args.server_name}: {args.tenant_command}d")
        elif args.tenant_command == "remove":
            purge = "?purge=true" if args.purge else ""
            call(args, "DELETE", f"/tenants/{args.server_name}{purge}")
            print(f"{args.server_name}: removed" + (" and purged" if args.purge else ""))
    except ControlClientError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def add_parser(sub: Any) -> None:
    tenant = sub.add_parser("tenant", help="manage the tenants of a running host")
    tenant.add_argument(
        "--config",
        "-c",
        default="data/homeserver.yaml",
        help="the host's main config (for the control address and secret)",
    )
    tenant.add_argument("--url", help="control API URL (or HAMLET_CONTROL_URL)")
    tenant.add_argument("--secret", help="control API secret (or HAMLET_CONTROL_SECRET)")
    tsub = tenant.add_subparsers(dest="tenant_command", required=True)
    add = tsub.add_parser("add", help="provision a new tenant")
    add.add_argument("server_name")
    add.add_argument(
        "--config",
        dest="tenant_config",
        help="YAML with the tenant's own settings (registration, limits, ...)",
    )
    lst = tsub.add_parser("list", help="list tenants with their state and figures")
    lst.add_argument("--json", action="store_true")
    for name in ("show", "suspend", "resume"):
        tsub.add_parser(name).add_argument("server_name")
    remove = tsub.add_parser("remove", help="drain, shut down and forget a tenant")
    remove.add_argument("server_name")
    remove.add_argument("--purge", action="store_true", help="also delete its data")
    tenant.set_defaults(func=run)
