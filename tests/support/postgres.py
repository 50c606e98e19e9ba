"""A throwaway PostgreSQL cluster for the test session (initdb in a temp dir)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class PostgresCluster:
    host: str
    port: int
    user: str
    database: str
    data_dir: Path
    process: subprocess.Popen[bytes]

    def dsn_kwargs(self) -> dict[str, object]:
        return {"host": self.host, "port": self.port, "user": self.user, "database": self.database}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def _find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing_binaries() -> list[str]:
    """The PostgreSQL server programs the suite needs and cannot find."""
    return [name for name in ("initdb", "postgres") if _find_binary(name) is None]


def start_cluster() -> PostgresCluster:
    initdb = _find_binary("initdb")
    postgres = _find_binary("postgres")
    if initdb is None or postgres is None:
        raise RuntimeError(f"PostgreSQL binaries not found: {', '.join(missing_binaries())}")
    root = Path(tempfile.mkdtemp(prefix="hamlet-pg-"))
    data_dir = root / "data"
    preexec = None
    user = pwd.getpwuid(os.getuid()).pw_name
    if os.getuid() == 0:
        # PostgreSQL refuses to run as root: run it as an unprivileged user.
        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        user = "nobody"

        def preexec() -> None:
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)

    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    subprocess.run(
        [initdb, "-D", str(data_dir), "-U", user, "-A", "trust", "-E", "UTF8", "--no-sync"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=preexec,
        env=env,
    )
    port = _free_port()
    proc = subprocess.Popen(
        [
            postgres,
            "-D",
            str(data_dir),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-k",
            str(root),
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=preexec,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("PostgreSQL exited during start-up") from None
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("PostgreSQL did not start in 30 s")
    # The socket accepts before the cluster accepts logins; wait for that too.
    while time.monotonic() < deadline:
        check = subprocess.run(
            [_find_binary("pg_isready") or "pg_isready", "-h", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if check.returncode == 0:
            break
        time.sleep(0.1)
    return PostgresCluster("127.0.0.1", port, user, "postgres", data_dir, proc)
