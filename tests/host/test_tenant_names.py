"""Names and routes of provisioned tenants: nobody takes another's Host, bad names leave nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hamlet.config import ConfigError, load_tenant_configs, validate_config, validate_server_name
from hamlet.config._reader import Invalid
from hamlet.config.homeserver import MIN_CONTROL_SECRET_LENGTH
from hamlet.host.records import RecordStore
from tests.host.registry_support import registered, tenant_entries
from tests.host.test_tenants import Host, MakeHost, make_host  # noqa: F401

WHOAMI = "/_matrix/client/v3/account/whoami"


async def _whoami(host: Host, host_header: str, token: str) -> str | None:
    status, body = await host.call(host_header, "GET", WHOAMI, token=token)
    return body.get("user_id") if status == 200 else None


def _leftovers(tmp_path: Path) -> list[str]:
    """What the tenants directory holds besides the registry."""
    return tenant_entries(tmp_path / "tenants")


def _registered(tmp_path: Path) -> list[str]:
    return registered(tmp_path / "tenants")


@pytest.mark.parametrize(
    ("evil", "baseurl"),
    [
        ("evil-a.test", "https://victim-a.test/"),
        ("evil-b.test", "https://VICTIM-B.test:8448/"),
        ("victim-c.test:8448", None),
        ("evil-d.test", "http://main.test/"),
    ],
)
async def test_a_tenant_cannot_take_another_hosts_requests(
    make_host: MakeHost,  # noqa: F811
    tmp_path: Path,
    evil: str,
    baseurl: str | None,
) -> None:
    host = await make_host()
    victim = (baseurl and baseurl.split("/")[2].split(":")[0].lower()) or evil.split(":")[0]
    if victim != "main.test":
        status, body = await host.control("POST", "/tenants", {"server_name": victim})
        assert status == 200, body
    token = await host.register(victim, "alice")
    before = _leftovers(tmp_path)

    request: dict[str, Any] = {"server_name": evil}
    if baseurl is not None:
        request["config"] = {"public_baseurl": baseurl}
    status, body = await host.control("POST", "/tenants", request)
    assert status == 409, body
    assert body["errcode"] == "M_UNKNOWN"
    assert any(f"served by {victim}" in e for e in body["errors"]), body
    assert _leftovers(tmp_path) == before
    assert await _whoami(host, victim, token) == f"@alice:{victim}"

    # Restarted, the victim still answers its host.
    await host.process.stop()
    host = await make_host()
    assert await _whoami(host, victim, token) == f"@alice:{victim}"


async def test_removing_a_tenant_leaves_other_hosts_routed(
    make_host: MakeHost,  # noqa: F811
) -> None:
    host = await make_host()
    await host.control("POST", "/tenants", {"server_name": "owner-r.test"})
    token = await host.register("owner-r.test", "alice")
    status, _ = await host.control(
        "POST",
        "/tenants",
        {"server_name": "other-r.test", "config": {"public_baseurl": "https://hs.other-r.test/"}},
    )
    assert status == 200
    status, _ = await host.control("DELETE", "/tenants/other-r.test?purge=true")
    assert status == 200
    assert await _whoami(host, "owner-r.test", token) == "@alice:owner-r.test"
    status, body = await host.call("hs.other-r.test", "GET", "/_matrix/client/versions")
    assert (status, body["errcode"]) == (404, "M_UNRECOGNIZED")


@pytest.mark.parametrize(
    "name",
    [
        "newline.test\n",
        "newline.test\n:8448",
        "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 61 + ":8448",
        "x" * 64 + ".test",
        "bad_label.test",
        "nul\x00.test",
        "dot.test.",
        ".dot.test",
        "../escape",
        "port.test:70000",
    ],
)
async def test_invalid_names_are_refused_and_leave_nothing(
    make_host: MakeHost,  # noqa: F811
    tmp_path: Path,
    name: str,
) -> None:
    host = await make_host()
    status, body = await host.control("POST", "/tenants", {"server_name": name})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), body
    assert _leftovers(tmp_path) == []
    assert _registered(tmp_path) == []


@pytest.mark.parametrize("name", ["a.test\n", "a.test:8448\n", "[::1\n]", "1.2.3.4\n"])
def test_a_trailing_newline_is_not_a_server_name(name: str) -> None:
    with pytest.raises(Invalid):
        validate_server_name(name)


def test_longest_server_names() -> None:
    longest_host = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 63])  # 255 characters
    assert validate_server_name(longest_host) == longest_host
    with pytest.raises(Invalid):
        validate_server_name(longest_host[:-4] + ":8448")  # 256 characters
    assert validate_server_name(longest_host[:-5] + ":8448")


@pytest.mark.parametrize(
    "listen",
    [{"port": 70000}, {"port": -1}, {"port": True}, {"port": "80"}, {"port": 0, "bind_address": 7}],
)
async def test_bad_own_listener_is_a_400_that_leaves_nothing(
    make_host: MakeHost,  # noqa: F811
    tmp_path: Path,
    listen: dict[str, Any],
) -> None:
    host = await make_host()
    status, body = await host.control(
        "POST", "/tenants", {"server_name": "port-l.test", "listen": listen}
    )
    assert status == 400, body
    assert body["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM")
    assert _leftovers(tmp_path) == []
    assert host.process.registry.get_tenant("port-l.test") is None
    status, _ = await host.call("port-l.test", "GET", "/_matrix/client/versions")
    assert status == 404
    # The name is free: adding it properly works, and so does removing it.
    status, body = await host.control(
        "POST", "/tenants", {"server_name": "port-l.test", "listen": {"port": 0}}
    )
    assert status == 200, body
    status, _ = await host.control("DELETE", "/tenants/port-l.test?purge=true")
    assert status == 200
    assert _leftovers(tmp_path) == []


async def test_an_unbindable_own_listener_is_refused_and_leaves_nothing(
    make_host: MakeHost,  # noqa: F811
    tmp_path: Path,
) -> None:
    host = await make_host()
    status, body = await host.control(
        "POST",
        "/tenants",
        {"server_name": "bind-l.test", "listen": {"port": host.port, "bind_address": "127.0.0.1"}},
    )
    assert status == 409, body
    assert _leftovers(tmp_path) == []
    assert _registered(tmp_path) == []
    status, body = await host.control("POST", "/tenants", {"server_name": "bind-l.test"})
    assert status == 200, body


@pytest.mark.parametrize(
    "key",
    ["tenants", "log_config", "listeners", "host", "pid_file", "database", "signing_key_path"],
)
async def test_host_level_keys_are_refused_in_a_tenant_config(
    make_host: MakeHost,  # noqa: F811
    tmp_path: Path,
    key: str,
) -> None:
    values: dict[str, Any] = {
        "tenants": ["/etc"],
        "log_config": "/etc/passwd",
        "listeners": [{"port": 8008}],
        "host": {"tenants_dir": "/tmp"},
        "pid_file": "/tmp/x.pid",
        "database": {"name": "sqlite3", "args": {"database": "/tmp/x.db"}},
        "signing_key_path": "/etc/shadow",
    }
    host = await make_host()
    status, body = await host.control(
        "POST", "/tenants", {"server_name": "keys-k.test", "config": {key: values[key]}}
    )
    assert status == 400, body
    assert any(e.startswith(f"{key}: the host sets this") for e in body["errors"]), body
    assert _leftovers(tmp_path) == []


def _raw(tmp_path: Path, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "server_name": name,
        "database": {"name": "sqlite3", "args": {"database": str(tmp_path / f"{name}.db")}},
        "signing_key_path": str(tmp_path / f"{name}.key"),
        "media_store_path": str(tmp_path / f"{name}-media"),
        **extra,
    }


def test_static_tenants_may_not_share_a_host(tmp_path: Path) -> None:
    (tmp_path / "tenants").mkdir()
    tenant = _raw(tmp_path, "b.test", public_baseurl="https://main.test/")
    (tmp_path / "tenants" / "b.yaml").write_text(yaml.safe_dump(tenant))
    main, _ = validate_config(
        _raw(tmp_path, "main.test", tenants=[str(tmp_path / "tenants")]), config_dir=tmp_path
    )
    with pytest.raises(ConfigError) as e:
        load_tenant_configs(main)
    assert any("public_baseurl: already used by the main config" in err for err in e.value.errors)


@pytest.mark.parametrize(
    ("control", "warned"),
    [
        ({"port": 0, "secret": "x"}, "secret"),
        ({"port": 0, "secret": "x" * MIN_CONTROL_SECRET_LENGTH, "bind_address": "0.0.0.0"}, "bind"),
        ({"port": 0, "secret": "x" * MIN_CONTROL_SECRET_LENGTH, "bind_address": "::"}, "bind"),
        ({"port": 0, "secret": "x" * MIN_CONTROL_SECRET_LENGTH}, None),
    ],
)
def test_a_weak_control_setup_is_warned_about(
    tmp_path: Path, control: dict[str, Any], warned: str | None
) -> None:
    _, warnings = validate_config(
        _raw(tmp_path, "main.test", host={"control": control}), config_dir=tmp_path
    )
    about = [w for w in warnings if "host.control" in w]
    if warned is None:
        assert about == []
    else:
        (warning,) = about
        assert f"host.control.{warned}" in warning


async def test_a_hijacker_persisted_by_an_older_version_stays_down_at_restart(
    make_host: MakeHost,  # noqa: F811
    tmp_path: Path,
) -> None:
    host = await make_host()
    status, _ = await host.control("POST", "/tenants", {"server_name": "old-evil.test"})
    assert status == 200
    token = await host.register("main.test", "alice")
    await host.process.stop()
    # What an unchecked version let through: a baseurl naming the main server.
    config_path = tmp_path / "tenants" / "old-evil.test" / "homeserver.yaml"
    raw = yaml.safe_load(config_path.read_text())
    raw["public_baseurl"] = "https://main.test/"
    config_path.write_text(yaml.safe_dump(raw))

    host = await make_host()
    assert await _whoami(host, "main.test", token) == "@alice:main.test"
    assert "hosts are taken" in host.process.manager.start_failures["old-evil.test"]
    status, body = await host.control("DELETE", "/tenants/old-evil.test?purge=true")
    assert status == 200, body
    assert _leftovers(tmp_path) == []
    assert _registered(tmp_path) == []


async def test_a_newline_name_persisted_by_an_older_version_stays_down_and_is_removable(
    make_host: MakeHost,  # noqa: F811
    tmp_path: Path,
) -> None:
    host = await make_host()
    await host.control("POST", "/tenants", {"server_name": "fine-n.test"})
    await host.process.stop()
    # Rename the tenant as an unchecked version would have stored it.
    tenants = tmp_path / "tenants"
    store = RecordStore(tenants)
    (record,) = store.open()
    store.delete(record.server_name)
    bad = "fine-n.test\n"
    (tenants / "fine-n.test").rename(tenants / bad)
    record.server_name = bad
    record.data_dir = str(tenants / bad)
    record.config_path = str(tenants / bad / "homeserver.yaml")
    store.put(record)
    store.close()
    raw = yaml.safe_load((tenants / bad / "homeserver.yaml").read_text())
    raw["server_name"] = bad
    (tenants / bad / "homeserver.yaml").write_text(yaml.safe_dump(raw))

    host = await make_host()
    assert "broken config" in host.process.manager.start_failures[bad]
    status, _ = await host.call("fine-n.test", "GET", "/_matrix/client/versions")
    assert status == 404
    status, body = await host.control("DELETE", "/tenants/fine-n.test%0A?purge=true")
    assert status == 200, body
    assert _leftovers(tmp_path) == []
    assert _registered(tmp_path) == []
