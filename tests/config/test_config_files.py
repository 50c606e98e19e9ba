"""load_config, generate_default_config and tenants."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hamlet.config import (
    ConfigError,
    HomeServerConfig,
    generate_default_config,
    load_config,
    load_tenant_configs,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- load_config ---------------------------------------------------------------


def test_load_config_resolves_relative_paths(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "conf" / "homeserver.yaml",
        "server_name: example.com\n"
        "database: {name: sqlite3, args: {database: db/hs.db}}\n"
        "signing_key_path: keys/signing.key\n"
        "media_store_path: media\n"
        "log_config: log.yaml\n"
        "tenants: [tenants.d, /abs/other.yaml]\n",
    )
    c, warnings = load_config(cfg)
    conf = tmp_path / "conf"
    assert warnings == []
    assert c.config_path == cfg
    assert c.config_dir == conf
    assert c.database.sqlite_path() == str(conf / "db" / "hs.db")
    assert c.signing_key_path == conf / "keys" / "signing.key"
    assert c.media_store_path == conf / "media"
    assert c.log_config == conf / "log.yaml"
    assert c.tenants == (conf / "tenants.d", Path("/abs/other.yaml"))


def test_validate_config_resolves_against_config_dir() -> None:
    from hamlet.config import validate_config

    c, _ = validate_config(
        {"server_name": "a.test", "media_store_path": "m", "signing_key_path": "/k"},
        config_dir=Path("/srv/a"),
    )
    assert c.media_store_path == Path("/srv/a/m")
    assert c.signing_key_path == Path("/k")


def test_load_config_yaml_syntax_error(tmp_path: Path) -> None:
    cfg = write(tmp_path / "bad.yaml", "server_name: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    (err,) = info.value.errors
    assert err.startswith(f"{cfg}: invalid YAML")


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("hello\n", "string")])
def test_load_config_non_mapping(tmp_path: Path, text: str, kind: str) -> None:
    cfg = write(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    (err,) = info.value.errors
    assert "must be a mapping" in err and kind in err


def test_load_config_empty_and_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="empty"):
        load_config(write(tmp_path / "empty.yaml", ""))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_load_config_validation_errors(tmp_path: Path) -> None:
    cfg = write(tmp_path / "hs.yaml", "server_name: x.test\nlisteners: [{port: 70000}]\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert info.value.errors == ["listeners[0].port: must be an integer between 0 and 65535"]


# -- generate_default_config ---------------------------------------------------------


def test_generated_config_round_trips(tmp_path: Path) -> None:
    data = tmp_path / "data"
    text = generate_default_config("example.com", data)
    cfg = write(tmp_path / "homeserver.yaml", text)
    c, warnings = load_config(cfg)
    assert warnings == []
    assert c.server_name == "example.com"
    assert c.public_baseurl == "https://example.com/"
    assert len(c.listeners) == 1
    (listener,) = c.listeners
    assert listener.port == 8008
    assert listener.bind_addresses == ("127.0.0.1",)
    assert listener.type == "http"
    assert [r.names for r in listener.resources] == [("client",)]
    assert c.database.name == "sqlite3"
    assert c.database.sqlite_path() == str(data / "homeserver.db")
    assert c.signing_key_path == data / "example.com.signing.key"
    assert c.media_store_path == data / "media_store"
    assert c.enable_registration is False
    assert c.log_config is None
    assert c.registration_shared_secret is not None
    assert len(c.registration_shared_secret) >= 40


def test_generated_config_localhost(tmp_path: Path) -> None:
    text = generate_default_config("localhost", tmp_path)
    c, _ = load_config(write(tmp_path / "hs.yaml", text))
    assert c.public_baseurl == "http://127.0.0.1:8008/"
    assert c.server_name == "localhost"


def test_generated_config_is_commented_and_random(tmp_path: Path) -> None:
    a = generate_default_config("example.com", tmp_path)
    b = generate_default_config("example.com", tmp_path)
    assert a.count("\n#") >= 5
    assert (
        yaml.safe_load(a)["registration_shared_secret"]
        != (yaml.safe_load(b)["registration_shared_secret"])
    )


def test_generate_rejects_bad_server_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="server_name"):
        generate_default_config("not a name", tmp_path)


# -- tenants ---------------------------------------------------------------------


def tenant_yaml(name: str) -> str:
    return (
        f"server_name: {name}\n"
        f"database: {{name: sqlite3, args: {{database: {name}.db}}}}\n"
        f"media_store_path: {name}-media\n"
    )


def load_main(tmp_path: Path, tenants: str) -> HomeServerConfig:
    main = write(tmp_path / "main.yaml", tenant_yaml("main.test") + f"tenants: {tenants}\n")
    c, _ = load_config(main)
    return c


def test_tenants_files_and_directory(tmp_path: Path) -> None:
    write(tmp_path / "one" / "a.yaml", tenant_yaml("a.test"))
    write(tmp_path / "tenants.d" / "c.yaml", tenant_yaml("c.test"))
    write(tmp_path / "tenants.d" / "b.yml", tenant_yaml("b.test") + "frobnicate: 1\n")
    write(tmp_path / "tenants.d" / "notes.txt", "ignored")
    write(tmp_path / "tenants.d" / ".hidden.yaml", "garbage: [")
    main = load_main(tmp_path, "[one/a.yaml, tenants.d]")
    warnings: list[str] = []
    tenants = load_tenant_configs(main, warnings=warnings)
    assert [t.server_name for t in tenants] == ["a.test", "b.test", "c.test"]
    assert tenants[0].config_path == tmp_path / "one" / "a.yaml"
    assert tenants[0].database.sqlite_path() == str(tmp_path / "one" / "a.test.db")
    assert warnings == [f"{tmp_path / 'tenants.d' / 'b.yml'}: unknown key 'frobnicate'"]


def test_process_keys_in_a_tenant_config_warn(tmp_path: Path) -> None:
    process_keys = (
        "listeners: [{port: 9999}]\n"
        "log_config: log.yaml\n"
        f"host: {{tenants_dir: {tmp_path / 'td'}}}\n"
    )
    write(tmp_path / "a.yaml", tenant_yaml("a.test") + process_keys)
    write(tmp_path / "b.yaml", tenant_yaml("b.test") + "listeners: []\n")
    warnings: list[str] = []
    load_tenant_configs(load_main(tmp_path, "[a.yaml, b.yaml]"), warnings=warnings)
    why = "in a tenant's config it is the main config's that counts"
    assert [w.split(" has no effect: ")[0] for w in warnings] == [
        f"{tmp_path / 'a.yaml'}: unsupported key '{key}'"
        for key in ("listeners", "log_config", "host")
    ]
    assert all(why in w for w in warnings)


def test_no_tenants(tmp_path: Path) -> None:
    assert load_tenant_configs(load_main(tmp_path, "[]")) == []


def test_main_config_in_tenant_directory_is_skipped(tmp_path: Path) -> None:
    write(tmp_path / "x.yaml", tenant_yaml("x.test"))
    main = load_main(tmp_path, "['.', x.yaml]")
    assert [t.server_name for t in load_tenant_configs(main)] == ["x.test"]


def test_tenant_errors_name_the_file(tmp_path: Path) -> None:
    bad = write(tmp_path / "t" / "bad.yaml", "server_name: bad.test\nbcrypt_rounds: many\n")
    broken = write(tmp_path / "t" / "broken.yaml", "server_name: [\n")
    dup = write(tmp_path / "t" / "dup.yaml", tenant_yaml("main.test").replace("main.test.", "d."))
    nested = write(tmp_path / "t" / "nested.yaml", tenant_yaml("n.test") + "tenants: [x]\n")
    main = load_main(tmp_path, "[t, missing.yaml]")
    with pytest.raises(ConfigError) as info:
        load_tenant_configs(main)
    errs = info.value.errors
    assert f"{tmp_path / 'missing.yaml'}: tenant config file or directory does not exist" in errs
    assert f"{bad}: bcrypt_rounds: must be an integer between 4 and 31" in errs
    assert any(e.startswith(f"{broken}: invalid YAML") for e in errs)
    assert f"{nested}: tenants: only the main config may list tenants" in errs
    assert f"{dup}: server_name: already used by {tmp_path / 'main.yaml'}" in errs
    assert len(errs) == 5


def test_tenants_sharing_storage_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "t" / "a.yaml", "server_name: a.test\nmedia_store_path: ../media\n")
    write(tmp_path / "t" / "b.yaml", "server_name: b.test\nmedia_store_path: ../media\n")
    main = load_main(tmp_path, "[t]")
    with pytest.raises(ConfigError) as info:
        load_tenant_configs(main)
    # Both tenants default to <dir>/homeserver.db, and share a media store.
    b = tmp_path / "t" / "b.yaml"
    assert info.value.errors == [
        f"{b}: database: already used by {tmp_path / 't' / 'a.yaml'}",
        f"{b}: media_store_path: already used by {tmp_path / 't' / 'a.yaml'}",
    ]


def test_postgres_tenants_need_distinct_schemas(tmp_path: Path) -> None:
    pg = "database: {name: psycopg2, args: {database: hs, schema: %s}}\nmedia_store_path: %s\n"
    write(tmp_path / "t" / "a.yaml", "server_name: a.test\n" + pg % ("a", "ma"))
    write(tmp_path / "t" / "b.yaml", "server_name: b.test\n" + pg % ("b", "mb"))
    main = load_main(tmp_path, "[t]")
    assert [t.database.pg_schema for t in load_tenant_configs(main)] == ["a", "b"]
    write(tmp_path / "t" / "c.yaml", "server_name: c.test\n" + pg % ("a", "mc"))
    with pytest.raises(ConfigError, match="database: already used by"):
        load_tenant_configs(main)
