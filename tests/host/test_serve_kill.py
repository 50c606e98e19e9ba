"""`hamlet serve` killed with SIGKILL mid-provisioning or mid-removal, then restarted.

The real process kills itself at the step (`TenantManager.crash_point`),
so nothing of Python's runs after it: what the restarted process finds is
exactly what a kill -9 leaves.
"""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest

from tests.support.serve_process import ServeProcess, main_config


def _killed_at(step: str) -> str:
    """A prelude making the process SIGKILL itself when it reaches `step`."""
    return (
        "import os, signal\n"
        "import hamlet.host.manager as manager\n"
        "def _crash(step):\n"
        f"    if step == {step!r}:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "manager._no_crash = _crash\n"
    )


def _restart(server: ServeProcess) -> None:
    """Start again, with a fresh log: `start` reads the ports from it."""
    server.log_path.rename(server.log_path.with_suffix(".before"))
    server.start()


@pytest.mark.parametrize(
    ("step", "recovery"),
    [("add:started", "provisioning is rolled back"), ("remove:committed", "removal is finished")],
)
def test_a_name_is_free_again_after_a_kill_at_any_step(
    tmp_path: Path, step: str, recovery: str
) -> None:
    server = ServeProcess(tmp_path, main_config(tmp_path))
    server.start(prelude=_killed_at(step))
    try:
        if step.startswith("remove"):
            server.provision("k.test")
            server.register("k.test", "alice")
        with pytest.raises(OSError):
            if step.startswith("add"):
                server.provision("k.test")
            else:
                server.control("DELETE", "/tenants/k.test?purge=true")
        assert server.wait_exit(10) == -signal.SIGKILL
        assert (tmp_path / "tenants" / "k.test").exists()  # what the kill left

        _restart(server)
        server.wait_for(rf"Tenant k\.test: its unfinished {recovery}, data purged", 5)
        assert not (tmp_path / "tenants" / "k.test").exists()
        server.provision("k.test")
        server.register("k.test", "alice")  # no old alice in the way
    finally:
        assert server.stop() == 0


def test_a_tenant_whose_port_is_taken_at_restart_does_not_stop_the_host(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ServeProcess(tmp_path, main_config(tmp_path))
    server.start()
    status, body = server.control(
        "POST", "/tenants", {"server_name": "own.test", "listen": {"port": port}}
    )
    assert status == 200, body
    server.provision("other.test")
    assert server.stop() == 0

    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        _restart(server)
        try:
            server.wait_for(r"Tenant own\.test is down: ListenError", 5)
            status, _ = server.request("GET", "/_matrix/client/versions", host="other.test")
            assert status == 200
        finally:
            assert server.stop() == 0
