"""The tenant registry: a row per tenant in SQLite, and registry.json of older versions imported."""

from __future__ import annotations

import json
from pathlib import Path

from hamlet.host.records import (
    LEGACY_MIGRATED_SUFFIX,
    LEGACY_REGISTRY_FILE,
    REGISTRY_DB,
    RecordStore,
    TenantRecord,
)
from tests.host.registry_support import registered, tenant_entries
from tests.host.test_tenants import MakeHost, make_host  # noqa: F401


def _to_legacy(tenants: Path) -> dict[str, dict[str, object]]:
    """Turn the registry back into what an older version would have left: registry.json."""
    store = RecordStore(tenants)
    records = store.open()
    store.close()
    data: dict[str, dict[str, object]] = {
        r.server_name: {
            "config_path": r.config_path,
            "data_dir": r.data_dir,
            "state": r.state,
            "created_ts": r.created_ts,
            "listen": list(r.listen) if r.listen else None,
        }
        for r in records
    }
    for path in tenants.iterdir():
        if path.name.startswith(REGISTRY_DB):
            path.unlink()
    (tenants / LEGACY_REGISTRY_FILE).write_text(json.dumps(data))
    return data


async def test_a_registry_json_is_imported_at_startup(
    make_host: MakeHost,  # noqa: F811
    tmp_path: Path,
) -> None:
    host = await make_host()
    for name in ("mig-a.test", "mig-b.test"):
        status, body = await host.control("POST", "/tenants", {"server_name": name})
        assert status == 200, body
    token = await host.register("mig-a.test", "alice")
    await host.control("POST", "/tenants/mig-b.test/suspend")
    await host.process.stop()
    tenants = tmp_path / "tenants"
    legacy = _to_legacy(tenants)
    assert sorted(legacy) == ["mig-a.test", "mig-b.test"]

    host = await make_host()
    status, body = await host.call(
        "mig-a.test", "GET", "/_matrix/client/v3/account/whoami", token=token
    )
    assert (status, body.get("user_id")) == (200, "@alice:mig-a.test")
    status, _ = await host.call("mig-b.test", "GET", "/_matrix/client/versions")
    assert status == 503, "its state came along"
    assert registered(tenants) == ["mig-a.test", "mig-b.test"]
    # Set aside (under a name no tenant can have), never imported again.
    assert not (tenants / LEGACY_REGISTRY_FILE).exists()
    assert (tenants / f".{LEGACY_REGISTRY_FILE}{LEGACY_MIGRATED_SUFFIX}").exists()
    assert tenant_entries(tenants) == [
        f".{LEGACY_REGISTRY_FILE}{LEGACY_MIGRATED_SUFFIX}",
        "mig-a.test",
        "mig-b.test",
    ]

    # Changes after the import are rows; a restart keeps them.
    status, body = await host.control("DELETE", "/tenants/mig-a.test?purge=true")
    assert status == 200, body
    await host.control("POST", "/tenants/mig-b.test/resume")
    await host.process.stop()
    host = await make_host()
    assert registered(tenants) == ["mig-b.test"]
    status, _ = await host.call("mig-b.test", "GET", "/_matrix/client/versions")
    assert status == 200


def test_an_import_interrupted_before_setting_the_file_aside_is_redone(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    entry = {"config_path": "/c", "data_dir": "/d", "state": "suspended", "created_ts": 5}
    (tenants / LEGACY_REGISTRY_FILE).write_text(json.dumps({"a.test": entry}))
    # The rows committed, then the process died before the rename: the
    # store holds rows (here one more, as if written by the import) and
    # the file is still there. The file wins, whole.
    store = RecordStore(tenants)
    store.put(TenantRecord("stray.test", "/c2", "/d2", "active", 1))
    store.close()
    store = RecordStore(tenants)
    (record,) = store.open()
    assert (record.server_name, record.state, record.created_ts) == ("a.test", "suspended", 5)
    assert record.listen is None
    store.close()


def test_rows_round_trip_and_change_one_at_a_time(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "tenants")
    assert store.open() == []
    a = TenantRecord("A.test", "/a/c", "/a", "active", 1, listen=("127.0.0.1", 8555))
    b = TenantRecord("b.test", "/b/c", "/b", "active", 2)
    store.put(a)
    store.put(b)
    store.set_state("a.TEST", "suspended")
    store.delete("B.test")
    store.close()
    reopened = RecordStore(tmp_path / "tenants")
    (record,) = reopened.open()
    assert record == TenantRecord("A.test", "/a/c", "/a", "suspended", 1, ("127.0.0.1", 8555))
    reopened.close()


async def test_a_tenant_may_be_named_like_the_registry_file(
    make_host: MakeHost,  # noqa: F811
    tmp_path: Path,
) -> None:
    host = await make_host()
    for name in ("registry.sqlite3", "registry.json"):
        status, body = await host.control("POST", "/tenants", {"server_name": name})
        assert status == 200, body
    await host.process.stop()
    host = await make_host()
    assert registered(tmp_path / "tenants") == ["registry.json", "registry.sqlite3"]
    status, _ = await host.call("registry.sqlite3", "GET", "/_matrix/client/versions")
    assert status == 200
