"""Reading a host's tenant registry and tenants directory from a test."""

from __future__ import annotations

from pathlib import Path

from hamlet.host.records import REGISTRY_DB, RecordStore


def registered(tenants_dir: Path) -> list[str]:
    """The server names the registry lists, as stored."""
    if not (tenants_dir / REGISTRY_DB).exists():
        return []
    store = RecordStore(tenants_dir)
    try:
        return sorted(r.server_name for r in store.open())
    finally:
        store.close()


def tenant_entries(tenants_dir: Path) -> list[str]:
    """What the tenants directory holds besides the registry's files."""
    if not tenants_dir.exists():
        return []
    return sorted(p.name for p in tenants_dir.iterdir() if not p.name.startswith(REGISTRY_DB))
