"""Application service registrations: Synapse's ``app_service_config_files``
(YAML files, one bridge each) and Hamlet's inline ``app_services`` (the same
mappings in the config itself, so a tenant provisioned through the control
API carries its bridges in its one config).

Registrations come from operators but are still bounded: a regex is
compiled here (an invalid one is a config error, not a failure on the first
event) and its length, the regexes per namespace and the services per
homeserver are capped, so a hostile file cannot make every event's
interest check slow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import yaml

from hamlet.config._reader import Context, Invalid, Section, resolve_path, to_str
from hamlet.core.ids import is_valid_localpart

MAX_APP_SERVICES = 100
MAX_NAMESPACE_REGEXES = 100
MAX_REGEX_LENGTH = 1000
MAX_TOKEN_LENGTH = 1000
MAX_REGISTRATION_FILE_BYTES = 1024 * 1024
NAMESPACE_KINDS = ("users", "aliases", "rooms")


@dataclass(frozen=True, slots=True)
class Namespace:
    regex: str
    exclusive: bool
    pattern: re.Pattern[str]

    def matches(self, value: str) -> bool:
        # Anchored at the start and not the end, as Synapse's `re.match`.
        return self.pattern.match(value) is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class AppServiceConfig:
    """One registration. ``url`` None: the service gets no events or queries."""

    id: str
    url: str | None
    as_token: str
    hs_token: str
    sender_localpart: str
    users: tuple[Namespace, ...] = ()
    aliases: tuple[Namespace, ...] = ()
    rooms: tuple[Namespace, ...] = ()
    rate_limited: bool = True
    protocols: tuple[str, ...] = ()
    #: `receive_ephemeral` (or MSC2409's `de.sorunome.msc2409.push_ephemeral`).
    receive_ephemeral: bool = False
    #: MSC3202 (`org.matrix.msc3202`): device masquerading and, in
    #: transactions, device list changes.
    msc3202: bool = False
    #: Where it came from, for log lines and errors (a file, or `app_services[i]`).
    source: str = ""


def app_services(ctx: Context, root: Section) -> tuple[AppServiceConfig, ...]:
    """Both keys' registrations, checked together for clashing IDs and tokens."""
    found: list[tuple[str, Section]] = []
    files = root.str_list("app_service_config_files", ())
    for i, name in enumerate(files):
        key = f"app_service_config_files[{i}]"
        try:
            path = resolve_path(ctx.config_dir, name)
        except Invalid as e:
            ctx.error(key, str(e))
            continue
        raw = _read_registration(ctx, key, path)
        if raw is not None:
            found.append((str(path), ctx.section(raw, f"{key} ({path})")))
    for i, s in enumerate(root.section_list("app_services") or ()):
        found.append((f"app_services[{i}]", s))
    if len(found) > MAX_APP_SERVICES:
        root.error("app_service_config_files", f"at most {MAX_APP_SERVICES} application services")
        return ()
    services = [svc for source, s in found if (svc := _registration(s, source)) is not None]
    _check_unique(ctx, services)
    return tuple(services)


def _read_registration(ctx: Context, key: str, path: Path) -> Mapping[str, Any] | None:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_REGISTRATION_FILE_BYTES + 1)
    except OSError as e:
        ctx.error(key, f"cannot read {path}: {e.strerror or e}")
        return None
    if len(data) > MAX_REGISTRATION_FILE_BYTES:
        ctx.error(key, f"{path} is larger than {MAX_REGISTRATION_FILE_BYTES} bytes")
        return None
    try:
        raw = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        ctx.error(key, f"{path} is not valid YAML: {e}")
        return None
    if not isinstance(raw, Mapping):
        ctx.error(key, f"{path} must hold a mapping (a registration)")
        return None
    return raw


def _token(value: Any) -> str:
    token = to_str(value)
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isprintable() or " " in token:
        raise Invalid(f"must be 1 to {MAX_TOKEN_LENGTH} printable characters without spaces")
    return token


def _localpart(value: Any) -> str:
    localpart = to_str(value)
    if not localpart or quote(localpart) != localpart or not is_valid_localpart(localpart):
        raise Invalid(f"{localpart!r} is not a valid user localpart")
    return localpart


def _url(value: Any) -> str:
    url = to_str(value).strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid(f"must be an http:// or https:// URL (or null), not {url!r}")
    return url.rstrip("/")


def _registration(s: Section, source: str) -> AppServiceConfig | None:
    as_id = s.require("id", _token)
    as_token = s.require("as_token", _token)
    hs_token = s.require("hs_token", _token)
    sender = s.require("sender_localpart", _localpart)
    # `url` must be present: null is the explicit "push nothing" (Synapse),
    # a missing one is more likely a typo that would silently drop events.
    url = None
    if "url" not in s.raw:
        s.value("url")
        s.error("url", "missing required key (set it to null for a service that gets no events)")
    else:
        url = s.get("url", None, _url)
    namespaces = s.section("namespaces")
    if namespaces is None and not s.has("namespaces"):
        s.error("namespaces", "missing required key")
    parsed = {kind: _namespaces(namespaces, kind) for kind in NAMESPACE_KINDS}
    receive_ephemeral = s.bool_("receive_ephemeral", False) or s.bool_(
        "de.sorunome.msc2409.push_ephemeral", False
    )
    service = AppServiceConfig(
        id=as_id or "",
        url=url,
        as_token=as_token or "",
        hs_token=hs_token or "",
        sender_localpart=sender or "",
        users=parsed["users"],
        aliases=parsed["aliases"],
        rooms=parsed["rooms"],
        rate_limited=s.bool_("rate_limited", True),
        protocols=s.str_list("protocols", ()),
        receive_ephemeral=receive_ephemeral,
        msc3202=s.bool_("org.matrix.msc3202", False),
        source=source,
    )
    s.ignore("ip_range_whitelist", "io.element.msc4190", "push_ephemeral")
    if None in (as_id, as_token, hs_token, sender):
        return None
    return service


def _namespaces(parent: Section | None, kind: str) -> tuple[Namespace, ...]:
    if parent is None:
        return ()
    entries = parent.section_list(kind)
    if entries is None:
        return ()
    if len(entries) > MAX_NAMESPACE_REGEXES:
        parent.error(kind, f"at most {MAX_NAMESPACE_REGEXES} regexes")
        return ()
    out: list[Namespace] = []
    for e in entries:
        regex = e.require("regex", _regex_source)
        exclusive = e.require("exclusive", _bool)
        if regex is None:
            continue
        try:
            pattern = re.compile(regex)
        except re.error as err:
            e.error("regex", f"invalid regular expression: {err}")
            continue
        if exclusive is not None:
            out.append(Namespace(regex, exclusive, pattern))
    return tuple(out)


def _regex_source(value: Any) -> str:
    regex = to_str(value)
    if not regex or len(regex) > MAX_REGEX_LENGTH:
        raise Invalid(f"must be 1 to {MAX_REGEX_LENGTH} characters")
    return regex


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("must be a boolean (true or false)")
    return value


def _check_unique(ctx: Context, services: list[AppServiceConfig]) -> None:
    """IDs and as_tokens name one service; an hs_token or as_token is one service's secret."""
    seen: dict[tuple[str, str], str] = {}
    for svc in services:
        claims = [("id", svc.id), ("token", svc.as_token), ("token", svc.hs_token)]
        if svc.as_token == svc.hs_token:
            ctx.error(svc.source, "as_token and hs_token must differ")
        for kind, value in claims:
            other = seen.setdefault((kind, value), svc.source)
            if other != svc.source:
                what = "id" if kind == "id" else "token (as_token or hs_token)"
                ctx.error(svc.source, f"{what} already used by {other}")
