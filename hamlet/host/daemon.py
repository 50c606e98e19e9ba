"""`hamlet serve --daemonize`: detach from the terminal as a classic Unix daemon.

The fork happens before anything that does not survive one exists: no
event loop, thread pool, database connection, timer or background job
(they are all created inside the event loop the daemon runs, and
background work only once that loop runs: `Clock.call_when_running`).
The command that was run waits until the daemon says it is serving (or
has died), so its exit status tells whether the server started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from pathlib import Path

from hamlet.runtime import blocking

logger = logging.getLogger(__name__)


class DaemonError(Exception):
    """The daemon cannot start (its pid file is held or cannot be written)."""


class Daemon:
    """The detached process's side: its pid file and the message to the waiting parent."""

    def __init__(self, pid_file: Path, ready_fd: int) -> None:
        self.pid_file = pid_file
        self._ready_fd: int | None = ready_fd

    def notify_ready(self) -> None:
        """Tell the command that started us that the server is up; it exits 0."""
        fd, self._ready_fd = self._ready_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.write(fd, b"1")
            os.close(fd)

    def remove_pid_file(self) -> None:
        """Remove the pid file if it is still ours (a clean exit)."""
        with contextlib.suppress(OSError, ValueError):
            if int(self.pid_file.read_text().strip()) == os.getpid():
                self.pid_file.unlink()


def check_pid_file(pid_file: Path) -> None:
    """Refuse to start over a pid file whose process still runs."""
    try:
        pid = int(pid_file.read_text().strip())
    except FileNotFoundError:
        return
    except (OSError, ValueError):
        return  # unreadable or garbage: a stale file, overwritten below
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return
    except PermissionError:
        pass  # it exists, as another user
    raise DaemonError(f"{pid_file}: another server (pid {pid}) is running")


def daemonize(pid_file: Path) -> Daemon:
    """Fork twice, start a session, write `pid_file` and detach stdio.

    Returns only in the daemon. The original process waits for
    `Daemon.notify_ready()` and exits 0, or exits 1 if the daemon dies
    first.
    """
    check_pid_file(pid_file)
    logger.info(
        "Daemonizing: %d threads running, thread pools started: %s",
        threading.active_count(),
        ", ".join(blocking.started_pools()) or "none",
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    if os.fork() > 0:
        os.close(write_fd)
        ready = os.read(read_fd, 1) == b"1"  # EOF: the daemon died before it was ready
        os._exit(0 if ready else 1)
    os.close(read_fd)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    # The grandchild: not a session leader, so it can never get a controlling terminal.
    os.chdir("/")
    try:
        _write_pid_file(pid_file)
    except OSError as e:
        print(f"Cannot write pid file {pid_file}: {e}", file=sys.stderr)
        os._exit(1)
    _detach_stdio()
    logger.info("Daemon running as pid %d", os.getpid())
    return Daemon(pid_file, write_fd)


def _write_pid_file(pid_file: Path) -> None:
    tmp = pid_file.with_name(f".{pid_file.name}.{os.getpid()}")
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(pid_file)


def _detach_stdio() -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
