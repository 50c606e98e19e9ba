"""A real Synapse (from requirements-synapse.txt, in .venv-synapse) on loopback.

It federates under the IP-literal name `127.0.0.1:<port>` on a TLS listener
with a self-signed certificate, does not verify certificates, may reach
loopback, keeps its data in SQLite and logs into its directory. A plain
client listener on another port lets tests act as its users.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from hamlet.core.crypto import generate_signing_key, write_signing_keys
from tests.support.tls import SelfSigned

REPO = Path(__file__).resolve().parents[2]
SYNAPSE_PYTHON = Path(
    os.environ.get("HAMLET_SYNAPSE_PYTHON", str(REPO / ".venv-synapse" / "bin" / "python"))
)
STARTUP_TIMEOUT_S = 90.0
#: For the shared-secret admin registration (`/_synapse/admin/v1/register`).
REGISTRATION_SECRET = "interop-registration"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Synapse:
    directory: Path
    federation_port: int
    client_port: int
    process: subprocess.Popen[bytes]
    startup_s: float = 0.0

    @property
    def server_name(self) -> str:
        return f"127.0.0.1:{self.federation_port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "homeserver.log"

    def log_tail(self, lines: int = 200) -> str:
        text = ""
        for path in (self.log_path, self.directory / "stdout.log"):
            if path.exists():
                text += f"--- {path} ---\n"
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text

    def client(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        """A blocking call to its client API (run it off the event loop)."""
        data = orjson.dumps(body) if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.client_port}{path}", data=data, method=method
        )
        request.add_header("Content-Type", "application/json")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, orjson.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, orjson.loads(e.read() or b"null")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def synapse_config(
    directory: Path, tls: SelfSigned, fed_port: int, client_port: int, log_level: str = "INFO"
) -> Any:
    log_config = directory / "log.yaml"
    log_config.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "formatters": {"f": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
                "handlers": {
                    "file": {
                        "class": "logging.FileHandler",
                        "filename": str(directory / "homeserver.log"),
                        "formatter": "f",
                    }
                },
                "root": {"level": log_level, "handlers": ["file"]},
                "disable_existing_loggers": False,
            }
        )
    )
    (directory / "signing.key").write_text(write_signing_keys([generate_signing_key()]))
    loopback = ["127.0.0.1"]
    return {
        "server_name": f"127.0.0.1:{fed_port}",
        "pid_file": str(directory / "homeserver.pid"),
        "report_stats": False,
        "listeners": [
            {
                "port": fed_port,
                "bind_addresses": loopback,
                "type": "http",
                "tls": True,
                "resources": [{"names": ["federation"]}],
            },
            {
                "port": client_port,
                "bind_addresses": loopback,
                "type": "http",
                "tls": False,
                # keys: its notary (/_matrix/key/v2/query) for tests to ask.
                "resources": [{"names": ["client", "keys"]}],
            },
        ],
        "tls_certificate_path": str(tls.certificate),
        "tls_private_key_path": str(tls.private_key),
        "database": {"name": "sqlite3", "args": {"database": str(directory / "homeserver.db")}},
        "log_config": str(log_config),
        "media_store_path": str(directory / "media_store"),
        "signing_key_path": str(directory / "signing.key"),
        "macaroon_secret_key": "interop-macaroon",
        "form_secret": "interop-form",
        "registration_shared_secret": REGISTRATION_SECRET,
        "enable_registration": True,
        "enable_registration_without_verification": True,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_verify_certificates": False,
        "ip_range_whitelist": ["127.0.0.1/8"],
        "federation_ip_range_blacklist": [],
        "rc_registration": {"per_second": 1000, "burst_count": 1000},
        "rc_message": {"per_second": 1000, "burst_count": 1000},
        "rc_federation": {"window_size": 1000, "sleep_limit": 1000, "reject_limit": 1000},
        "url_preview_enabled": False,
        "presence": {"enabled": True},
    }


def start_synapse(
    directory: Path, tls: SelfSigned, *, python: Path = SYNAPSE_PYTHON, log_level: str = "INFO"
) -> Synapse:
    """Start Synapse and wait until its client API answers; RuntimeError with its log if not.

    Benches pass their own `python` (a scratch venv) and a quieter `log_level`."""
    if not python.exists():
        raise FileNotFoundError(python)
    directory.mkdir(parents=True, exist_ok=True)
    fed_port, client_port = free_port(), free_port()
    config_path = directory / "homeserver.yaml"
    config = synapse_config(directory, tls, fed_port, client_port, log_level)
    config_path.write_text(yaml.safe_dump(config))
    started = time.monotonic()
    command = [str(python), "-m", "synapse.app.homeserver", "--config-path"]
    with (directory / "stdout.log").open("wb") as out:
        process = subprocess.Popen(
            [*command, str(config_path)],
            cwd=directory,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    synapse = Synapse(directory, fed_port, client_port, process)
    deadline = started + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Synapse exited with {process.returncode}\n{synapse.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{client_port}/health", timeout=2):
                synapse.startup_s = time.monotonic() - started
                return synapse
        except OSError:
            # Not listening yet: the process is still starting (a subprocess
            # cannot signal readiness any other way).
            time.sleep(0.1)
    synapse.stop()
    raise RuntimeError(f"Synapse did not start in {STARTUP_TIMEOUT_S}s\n{synapse.log_tail()}")
