"""Application service registrations in the config: files and inline, every
error reported with its key path, hostile values bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hamlet.config import ConfigError, validate_config
from hamlet.config.appservice import MAX_NAMESPACE_REGEXES, MAX_REGEX_LENGTH


def base(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "server_name": "example.org",
        "database": {"name": "sqlite3", "args": {"database": str(tmp_path / "db")}},
        **extra,
    }


def reg(**extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "id": "irc",
        "url": "http://localhost:9999/",
        "as_token": "a" * 20,
        "hs_token": "h" * 20,
        "sender_localpart": "_irc_bot",
        "namespaces": {"users": [{"exclusive": True, "regex": "@_irc_.*:example.org"}]},
    }
    r.update(extra)
    return r


def errors_of(tmp_path: Path, **extra: Any) -> list[str]:
    with pytest.raises(ConfigError) as e:
        validate_config(base(tmp_path, **extra), config_dir=tmp_path)
    return e.value.errors


def test_registration_file_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "irc.yaml"
    path.write_text(
        yaml.safe_dump(reg(**{"de.sorunome.msc2409.push_ephemeral": True, "protocols": ["irc"]}))
    )
    config, warnings = validate_config(
        base(tmp_path, app_service_config_files=["irc.yaml"]), config_dir=tmp_path
    )
    (svc,) = config.app_services
    assert svc.id == "irc" and svc.url == "http://localhost:9999"
    assert svc.receive_ephemeral and svc.protocols == ("irc",) and svc.rate_limited
    assert svc.users[0].exclusive and svc.users[0].matches("@_irc_x:example.org")
    assert svc.source == str(path)
    assert warnings == []


def test_inline_registration_with_null_url(tmp_path: Path) -> None:
    config, _ = validate_config(
        base(
            tmp_path,
            app_services=[reg(url=None, rate_limited=False, **{"org.matrix.msc3202": True})],
        ),
        config_dir=tmp_path,
    )
    (svc,) = config.app_services
    assert svc.url is None and not svc.rate_limited and svc.msc3202


def test_errors_carry_key_paths(tmp_path: Path) -> None:
    bad = reg(
        as_token=5,
        namespaces={"users": [{"exclusive": "yes", "regex": "(unclosed"}], "rooms": "x"},
    )
    del bad["url"]
    del bad["hs_token"]
    errors = errors_of(tmp_path, app_services=[bad])
    assert "app_services[0].as_token: must be a string" in errors
    assert "app_services[0].hs_token: missing required key" in errors
    assert any(e.startswith("app_services[0].url: missing required key") for e in errors)
    assert (
        "app_services[0].namespaces.users[0].exclusive: must be a boolean (true or false)" in errors
    )
    assert any(
        e.startswith("app_services[0].namespaces.users[0].regex: invalid regular") for e in errors
    )
    assert "app_services[0].namespaces.rooms: must be a list" in errors


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("id: [unclosed")
    (tmp_path / "list.yaml").write_text("- 1")
    (tmp_path / "noid.yaml").write_text(yaml.safe_dump({**reg(), "id": None}))
    errors = errors_of(
        tmp_path,
        app_service_config_files=["bad.yaml", "list.yaml", "missing.yaml", "noid.yaml"],
    )
    assert any(
        e.startswith("app_service_config_files[0]: ") and "not valid YAML" in e for e in errors
    )
    assert any(e.startswith("app_service_config_files[1]: ") for e in errors)
    assert any(e.startswith("app_service_config_files[2]: cannot read") for e in errors)
    assert any(
        e.startswith("app_service_config_files[3] (") and e.endswith(".id: missing required key")
        for e in errors
    )


def test_ids_and_tokens_are_unique(tmp_path: Path) -> None:
    errors = errors_of(
        tmp_path,
        app_services=[
            reg(),
            reg(as_token="b" * 20),
            reg(id="other", as_token="h" * 20, hs_token="c" * 20),
            reg(id="same", as_token="x" * 20, hs_token="x" * 20),
        ],
    )
    assert "app_services[1]: id already used by app_services[0]" in errors
    assert any(e.startswith("app_services[1]: token") for e in errors)
    assert any(e.startswith("app_services[2]: token") for e in errors)
    assert "app_services[3]: as_token and hs_token must differ" in errors


def test_hostile_registrations_are_bounded(tmp_path: Path) -> None:
    many = [{"exclusive": False, "regex": f"@u{i}.*"} for i in range(MAX_NAMESPACE_REGEXES + 1)]
    errors = errors_of(
        tmp_path,
        app_services=[
            reg(namespaces={"users": many}),
            reg(
                id="b",
                as_token="t2" * 5,
                hs_token="t3" * 5,
                namespaces={
                    "aliases": [{"exclusive": True, "regex": "a" * (MAX_REGEX_LENGTH + 1)}]
                },
            ),
            reg(id="c", as_token="t4" * 5, hs_token="t5" * 5, sender_localpart="Bad Name"),
            reg(id="d", as_token="has space", hs_token="t6" * 5, url="ftp://x"),
        ],
    )
    assert f"app_services[0].namespaces.users: at most {MAX_NAMESPACE_REGEXES} regexes" in errors
    assert any(
        e.startswith("app_services[1].namespaces.aliases[0].regex: must be 1 to") for e in errors
    )
    assert any(e.startswith("app_services[2].sender_localpart:") for e in errors)
    assert any(e.startswith("app_services[3].as_token:") for e in errors)
    assert any(e.startswith("app_services[3].url: must be an http") for e in errors)
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"#" * (1024 * 1024 + 10))
    errors = errors_of(tmp_path, app_service_config_files=[str(huge)])
    assert any("larger than" in e for e in errors)
