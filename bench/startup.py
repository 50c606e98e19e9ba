"""Startup time and idle memory of a serving process.

    .venv/bin/python bench/startup.py [--tenants 100]

Writes configs into a temporary directory (SQLite; every tenant with its own
database, signing key and media store, listed through the main config's
`tenants:` key), spawns `hamlet serve` on a free port and prints one JSON
line:

* startup_s:          from spawning the process (1 tenant) to
                      /_matrix/client/versions answering 200
* rss_1_tenant_mb:    VmRSS of that process once idle
* rss_100_tenants_mb: VmRSS of a process serving 100 tenants once idle

Extra detail (startup with many tenants, RSS per extra tenant) goes to
stderr. Prints numbers only; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

SETTLE_S = 2.0
TIMEOUT_S = 300.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tenant_yaml(name: str, data: Path, extra: str = "") -> str:
    data.mkdir(parents=True, exist_ok=True)
    return (
        f"server_name: {json.dumps(name)}\n"
        f"public_baseurl: {json.dumps(f'http://{name}/')}\n"
        "database:\n  name: sqlite3\n"
        f"  args: {{database: {json.dumps(str(data / 'homeserver.db'))}}}\n"
        f"signing_key_path: {json.dumps(str(data / 'signing.key'))}\n"
        f"media_store_path: {json.dumps(str(data / 'media'))}\n"
        "registration_shared_secret: bench-secret\n"
        "bcrypt_rounds: 4\n" + extra
    )


def write_configs(root: Path, tenants: int, port: int) -> Path:
    """The main config serves `main.bench`; tenants-1 more come from tenants/."""
    tenant_dir = root / "tenants"
    tenant_dir.mkdir()
    for i in range(1, tenants):
        name = f"t{i:04d}.bench"
        (tenant_dir / f"{name}.yaml").write_text(tenant_yaml(name, root / "data" / name))
    main = root / "homeserver.yaml"
    listeners = f"listeners:\n  - port: {port}\n    bind_addresses: ['127.0.0.1']\n"
    extra = listeners + ("tenants: [tenants]\n" if tenants > 1 else "")
    main.write_text(tenant_yaml("main.bench", root / "data" / "main.bench", extra))
    return main


def vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def wait_for_versions(port: int, proc: subprocess.Popen[bytes], started: float) -> float:
    url = f"http://127.0.0.1:{port}/_matrix/client/versions"
    request = urllib.request.Request(url, headers={"Host": "main.bench"})
    while time.monotonic() - started < TIMEOUT_S:
        if proc.poll() is not None:
            raise RuntimeError(f"hamlet serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(request, timeout=1) as resp:
                if resp.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.005)
    raise RuntimeError("hamlet serve did not answer in time")


def settled_rss(pid: int) -> float:
    """RSS once it stops moving (idle: no requests, timers only)."""
    time.sleep(SETTLE_S)
    previous = vm_rss_mb(pid)
    for _ in range(10):
        time.sleep(0.5)
        now = vm_rss_mb(pid)
        if abs(now - previous) < 0.1:
            return now
        previous = now
    return previous


def run(tenants: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="hamlet-bench-") as tmp:
        port = free_port()
        config = write_configs(Path(tmp), tenants, port)
        log = open(Path(tmp) / "serve.log", "wb")
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "hamlet.cli", "serve", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            startup = wait_for_versions(port, proc, started)
            rss = settled_rss(proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
        return startup, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenants", type=int, default=100)
    args = parser.parse_args()
    startup_1, rss_1 = run(1)
    startup_n, rss_n = run(args.tenants)
    per_tenant_kb = (rss_n - rss_1) * 1024 / max(args.tenants - 1, 1)
    print(
        f"startup with {args.tenants} tenants: {startup_n:.2f}s; "
        f"RSS per extra tenant: {per_tenant_kb:.0f} KiB",
        file=sys.stderr,
    )
    print(
        json.dumps(
            {
                "startup_s": round(startup_1, 3),
                "rss_1_tenant_mb": round(rss_1, 1),
                f"rss_{args.tenants}_tenants_mb": round(rss_n, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
