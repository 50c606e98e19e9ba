"""Provisioning and removal killed at each step: the next start finishes or rolls back.

The process "dies" at a step: the tenants directory is copied as it is
there (what a kill -9 would leave on disk), the step raises, the host is
stopped, the copy put back, and a new host started on it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from hamlet.host.journal import PROVISIONING, REMOVING, TRASH_PREFIX
from tests.host.registry_support import registered as registered_in
from tests.host.registry_support import tenant_entries
from tests.host.test_tenants import Host, MakeHost, make_host  # noqa: F401

WHOAMI = "/_matrix/client/v3/account/whoami"


class Killed(BaseException):
    """The process dying: nothing after this point runs (not even `except Exception`)."""


def kill_at(host: Host, step: str, snapshot: Path) -> None:
    tenants = host.process.manager.tenants_dir

    def crash_point(name: str) -> None:
        if name == step:
            shutil.copytree(tenants, snapshot)
            raise Killed(step)

    host.process.manager.crash_point = crash_point


async def restart_from(host: Host, snapshot: Path, make: MakeHost) -> Host:
    tenants = host.process.manager.tenants_dir
    await host.process.stop()
    shutil.rmtree(tenants)
    os.rename(snapshot, tenants)
    restarted: Host = await make()
    return restarted


def tenant_dirs(tmp_path: Path) -> list[str]:
    return tenant_entries(tmp_path / "tenants")


def registered(tmp_path: Path) -> list[str]:
    return registered_in(tmp_path / "tenants")


async def can_provision_afresh(host: Host, name: str) -> None:
    """The name is free again, and its old data is gone (alice can be registered anew)."""
    status, body = await host.control("POST", "/tenants", {"server_name": name})
    assert status == 200, body
    token = await host.register(name, "alice")
    status, body = await host.call(name, "GET", WHOAMI, token=token)
    assert (status, body.get("user_id")) == (200, f"@alice:{name}")


@pytest.mark.parametrize("step", ["add:files", "add:started"])
async def test_a_provisioning_killed_before_its_commit_is_rolled_back(
    make_host: MakeHost,  # noqa: F811
    tmp_path: Path,
    engine: str,
    step: str,
) -> None:
    name = f"crash-{step.replace(':', '-')}-{engine}.test"
    host = await make_host()
    await host.control("POST", "/tenants", {"server_name": "bystander-a.test"})
    kill_at(host, step, tmp_path / "snapshot")
    with pytest.raises(Killed):
        await host.process.manager.add(name)
    assert (tmp_path / "snapshot" / name / PROVISIONING).exists()

    host = await restart_from(host, tmp_path / "snapshot", make_host)
    assert tenant_dirs(tmp_path) == ["bystander-a.test"]
    assert host.process.registry.get_tenant(name) is None
    await can_provision_afresh(host, name)
    status, _ = await host.call("bystander-a.test", "GET", "/_matrix/client/versions")
    assert status == 200
    await host.control("DELETE", "/tenants/bystander-a.test?purge=true")
    await host.control("DELETE", f"/tenants/{name}?purge=true")


async def test_a_provisioning_killed_after_its_commit_is_finished(
    make_host: MakeHost,  # noqa: F811
    tmp_path: Path,
    engine: str,
) -> None:
    name = f"crash-committed-{engine}.test"
    host = await make_host()
    kill_at(host, "add:committed", tmp_path / "snapshot")
    with pytest.raises(Killed):
        await host.process.manager.add(name)

    host = await restart_from(host, tmp_path / "snapshot", make_host)
    assert registered(tmp_path) == [name]
    assert not (tmp_path / "tenants" / name / PROVISIONING).exists()
    token = await host.register(name, "alice")
    status, body = await host.call(name, "GET", WHOAMI, token=token)
    assert (status, body.get("user_id")) == (200, f"@alice:{name}")
    await host.control("DELETE", f"/tenants/{name}?purge=true")


async def _provisioned_with_alice(make: MakeHost, name: str) -> tuple[Host, str]:
    host: Host = await make()
    status, body = await host.control("POST", "/tenants", {"server_name": name})
    assert status == 200, body
    return host, await host.register(name, "alice")


async def _removal_killed_at(
    make: MakeHost, tmp_path: Path, name: str, step: str, *, purge: bool
) -> tuple[Host, str]:
    """A tenant with a user, its removal killed at `step`, and the host restarted."""
    host, token = await _provisioned_with_alice(make, name)
    kill_at(host, step, tmp_path / "snapshot")
    with pytest.raises(Killed):
        await host.process.manager.remove(name, purge=purge)
    assert (tmp_path / "snapshot" / name / REMOVING).exists()
    return await restart_from(host, tmp_path / "snapshot", make), token


async def test_a_removal_killed_before_its_commit_is_rolled_back(
    make_host: MakeHost,  # noqa: F811
    tmp_path: Path,
    engine: str,
) -> None:
    name = f"crash-remove-marked-{engine}.test"
    host, token = await _removal_killed_at(make_host, tmp_path, name, "remove:marked", purge=True)
    assert registered(tmp_path) == [name]
    assert not (tmp_path / "tenants" / name / REMOVING).exists()
    status, body = await host.call(name, "GET", WHOAMI, token=token)
    assert (status, body.get("user_id")) == (200, f"@alice:{name}")
    await host.control("DELETE", f"/tenants/{name}?purge=true")


@pytest.mark.parametrize("step", ["remove:committed", "purge:database-dropped"])
async def test_a_purge_killed_after_its_commit_is_finished(
    make_host: MakeHost,  # noqa: F811
    tmp_path: Path,
    engine: str,
    step: str,
) -> None:
    name = f"crash-{step.replace(':', '-')}-{engine}.test"
    host, _ = await _removal_killed_at(make_host, tmp_path, name, step, purge=True)
    assert registered(tmp_path) == []
    assert tenant_dirs(tmp_path) == []
    await can_provision_afresh(host, name)
    await host.control("DELETE", f"/tenants/{name}?purge=true")


async def test_a_removal_keeping_data_killed_after_its_commit_keeps_the_data(
    make_host: MakeHost,  # noqa: F811
    tmp_path: Path,
    engine: str,
) -> None:
    name = f"crash-keep-{engine}.test"
    await _removal_killed_at(make_host, tmp_path, name, "remove:committed", purge=False)
    assert registered(tmp_path) == []
    assert tenant_dirs(tmp_path) == [name]
    assert (tmp_path / "tenants" / name / "homeserver.yaml").exists()
    assert not (tmp_path / "tenants" / name / REMOVING).exists()


async def test_trash_an_interrupted_purge_left_is_deleted_at_startup(
    make_host: MakeHost,  # noqa: F811
    tmp_path: Path,
) -> None:
    host = await make_host()
    await host.process.stop()
    leftover = tmp_path / "tenants" / f"{TRASH_PREFIX}gone.test-0123abcd"
    (leftover / "media_store").mkdir(parents=True)
    (leftover / "homeserver.db").write_bytes(b"x" * 1000)
    await make_host()
    assert not leftover.exists()
