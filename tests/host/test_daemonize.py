"""`hamlet serve --daemonize`, run as a real process.

The log file (written by the original process and by the daemon, each
line with its process ID) is the witness: the process that was run must
have had no thread pool and no thread besides its main one when it
forked, and every pool, database connection and background job must
belong to the daemon, after it detached.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

SERVER = "daemon.test"


def _write_config(tmp_path: Path, port: int = 0) -> tuple[Path, Path, Path]:
    log_file = tmp_path / "homeserver.log"
    pid_file = tmp_path / "homeserver.pid"
    log_config = tmp_path / "log.yaml"
    log_config.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {"f": {"format": "%(process)d|%(name)s|%(message)s"}},
                "handlers": {
                    "file": {
                        "class": "logging.FileHandler",
                        "filename": str(log_file),
                        "formatter": "f",
                    }
                },
                "root": {"level": "DEBUG", "handlers": ["file"]},
            }
        )
    )
    config = tmp_path / "homeserver.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server_name": SERVER,
                "listeners": [{"port": port, "bind_addresses": ["127.0.0.1"], "type": "http"}],
                "database": {"name": "sqlite3", "args": {"database": str(tmp_path / "hs.db")}},
                "log_config": str(log_config),
                "pid_file": str(pid_file),
            }
        )
    )
    return config, log_file, pid_file


def _serve(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hamlet.cli", "serve", "--daemonize", "-c", str(config), *extra],
        capture_output=True,
        text=True,
        timeout=30,
    )


def _log_lines(log_file: Path) -> list[tuple[int, str, str]]:
    lines = []
    for line in log_file.read_text().splitlines():
        pid, name, message = line.split("|", 2)
        lines.append((int(pid), name, message))
    return lines


def _wait_gone(pid: int, pid_file: Path) -> None:
    """Wait (bounded) for a process that is not our child to exit."""
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return
        if status.rsplit(")", 1)[1].split()[0] == "Z" and not pid_file.exists():
            return  # exited; nobody has reaped it yet
        time.sleep(0.05)
    raise AssertionError(f"daemon {pid} still running")


def test_daemon_forks_before_pools_connections_and_jobs(tmp_path: Path) -> None:
    config, log_file, pid_file = _write_config(tmp_path)
    started = _serve(config)
    assert started.returncode == 0, started.stderr
    daemon_pid = int(pid_file.read_text())
    try:
        lines = _log_lines(log_file)
        parent = [(pid, m) for pid, _, m in lines if m.startswith("Daemonizing:")]
        assert len(parent) == 1
        parent_pid, message = parent[0]
        assert parent_pid != daemon_pid
        assert message == "Daemonizing: 1 threads running, thread pools started: none"

        pids = [pid for pid, _, _ in lines]
        detached_at = pids.index(daemon_pid)
        assert lines[detached_at][2] == f"Daemon running as pid {daemon_pid}"
        # Before the daemon's first line only the original process logged.
        assert set(pids[:detached_at]) == {parent_pid}

        # asyncio logs this (at DEBUG) as it creates the daemon's event loop.
        loop_at = lines.index((daemon_pid, "asyncio", "Using selector: EpollSelector"))
        assert loop_at > detached_at

        def by_daemon_in_its_loop(prefix: str) -> None:
            found = [i for i, (_, _, m) in enumerate(lines) if m.startswith(prefix)]
            assert found, f"no line {prefix!r}"
            assert all(lines[i][0] == daemon_pid and i > loop_at for i in found), prefix

        by_daemon_in_its_loop("Started the db thread pool")
        by_daemon_in_its_loop("Opened SQLite database")
        # Background work starts from call_when_running, so only once the loop runs.
        by_daemon_in_its_loop(f"Homeserver {SERVER} running")
    finally:
        os.kill(daemon_pid, signal.SIGTERM)
        _wait_gone(daemon_pid, pid_file)
    assert not pid_file.exists()


def test_a_running_daemon_holds_its_pid_file(tmp_path: Path) -> None:
    config, _log_file, pid_file = _write_config(tmp_path)
    pid_file.write_text(f"{os.getpid()}\n")  # a live process holds it
    second = _serve(config)
    assert second.returncode == 1
    assert "another server" in second.stderr
    assert pid_file.read_text() == f"{os.getpid()}\n"


def test_daemonize_without_pid_file_is_refused(tmp_path: Path) -> None:
    config, _log_file, _pid_file = _write_config(tmp_path)
    raw = yaml.safe_load(config.read_text())
    del raw["pid_file"]
    config.write_text(yaml.safe_dump(raw))
    result = _serve(config)
    assert result.returncode == 1
    assert "pid_file" in result.stderr


def test_a_daemon_that_fails_to_start_fails_the_command(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config, log_file, pid_file = _write_config(tmp_path, port=taken.getsockname()[1])
        result = _serve(config)
    assert result.returncode == 1
    assert not pid_file.exists()  # removed by the daemon on its way out
    assert "Daemon running as pid" in log_file.read_text()
