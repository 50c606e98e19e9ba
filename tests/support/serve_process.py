"""A real `hamlet serve` process for tests and benches: config in a temp dir, log read back.

The process writes its log (Hamlet's default format, so each line names
its tenant and request) to a file; `wait_for` polls that file against a
deadline, so callers synchronise on what the server says it did instead of
sleeping. Ports are chosen by the kernel (port 0) and read from the log.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from hamlet.handlers.accounts.shared_secret import registration_mac
from hamlet.runtime.logcontext import DEFAULT_LOG_FORMAT

CONTROL_SECRET = "serve-process-control-secret"
SHARED_SECRET = "serve-process-shared-secret"
V3 = "/_matrix/client/v3"


def main_config(root: Path, *, port: int = 0, **extra: Any) -> dict[str, Any]:
    """A main config serving `main.test` on 127.0.0.1 with the control API on."""
    data = root / "main.test"
    return {
        "server_name": "main.test",
        "public_baseurl": "http://main.test/",
        "listeners": [{"port": port, "bind_addresses": ["127.0.0.1"]}],
        "registration_shared_secret": SHARED_SECRET,
        "bcrypt_rounds": 4,
        "database": {"name": "sqlite3", "args": {"database": str(data / "homeserver.db")}},
        "signing_key_path": str(data / "signing.key"),
        "media_store_path": str(data / "media"),
        "host": {
            "control": {"port": 0, "secret": CONTROL_SECRET},
            "tenants_dir": str(root / "tenants"),
        },
        **extra,
    }


class ServeProcess:
    def __init__(self, root: Path, config: dict[str, Any], *, level: str = "INFO") -> None:
        self.root = root
        self.config_path = root / "homeserver.yaml"
        self.log_path = root / "hamlet.log"
        self.stderr_path = root / "stderr.txt"
        root.mkdir(parents=True, exist_ok=True)
        log_config = root / "log.yaml"
        log_config.write_text(yaml.safe_dump(_log_config(self.log_path, level)))
        self.config_path.write_text(yaml.safe_dump({**config, "log_config": str(log_config)}))
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.control_port = 0

    def start(self, *, prelude: str = "", wait: bool = True, deadline_s: float = 20.0) -> None:
        """Spawn `hamlet serve`; `prelude` is Python run first (to inject a failure)."""
        code = f"{prelude}\nimport sys\nfrom hamlet.cli import main\nsys.exit(main(sys.argv[1:]))"
        with self.stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code, "serve", "-c", str(self.config_path)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                cwd=self.root,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        if wait:
            control = self.wait_for(r"Control API on http://[^:]+:(\d+)", deadline_s)
            self.control_port = int(control.group(1))
            self.port = int(self.wait_for(r"Listening on port (\d+)", deadline_s).group(1))

    def log_lines(self) -> list[str]:
        if not self.log_path.exists():
            return []
        return self.log_path.read_text(errors="replace").splitlines()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_for(self, pattern: str, deadline_s: float, *, after: int = 0) -> re.Match[str]:
        """The first log line from index `after` on matching `pattern`, within the deadline."""
        regex = re.compile(pattern)
        until = time.monotonic() + deadline_s
        while True:
            for line in self.log_lines()[after:]:
                if (match := regex.search(line)) is not None:
                    return match
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"hamlet serve exited before {pattern!r}:\n{self.stderr()}")
            if time.monotonic() > until:
                raise AssertionError(f"no log line matched {pattern!r} in {deadline_s}s")
            time.sleep(0.02)

    def wait_exit(self, deadline_s: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(deadline_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"hamlet serve still running after {deadline_s}s") from None

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    # --- HTTP ---

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        host: str = "main.test",
        token: str | None = None,
        port: int | None = None,
        timeout_s: float = 30.0,
    ) -> tuple[int, Any]:
        headers = {"Host": host, "Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        url = f"http://127.0.0.1:{port or self.port}{path}"
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def control(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {CONTROL_SECRET}", "Content-Type": "application/json"}
        data = json.dumps(body).encode() if body is not None else None
        url = f"http://127.0.0.1:{self.control_port}{path}"
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def provision(self, server_name: str) -> None:
        status, body = self.control(
            "POST",
            "/tenants",
            {"server_name": server_name, "config": {"registration_shared_secret": SHARED_SECRET}},
        )
        assert status == 200, body

    def register(self, host: str, user: str, password: str = "pw") -> str:
        """A new user's access token, through the shared-secret admin API."""
        path = "/_synapse/admin/v1/register"
        status, body = self.request("GET", path, host=host)
        assert status == 200, body
        nonce = body["nonce"]
        mac = registration_mac(SHARED_SECRET, nonce, user, password, False)
        payload = {"nonce": nonce, "username": user, "password": password, "mac": mac}
        status, body = self.request("POST", path, payload, host=host)
        assert status == 200, body
        token: str = body["access_token"]
        return token


def _log_config(path: Path, level: str) -> dict[str, Any]:
    return {
        "version": 1,
        "formatters": {"precise": {"format": DEFAULT_LOG_FORMAT}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(path), "formatter": "precise"}
        },
        "root": {"level": level, "handlers": ["file"]},
        "disable_existing_loggers": False,
    }
