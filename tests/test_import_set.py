"""What a serving process imports: rarely used heavy packages wait for their first use.

Each is megabytes of resident memory and milliseconds of every start
(bench/startup.py prints both), so they are imported where they are used:
Pillow by the thumbnailer, the OpenTelemetry SDK when tracing is on,
dnspython on the first SRV lookup, asyncpg by a process using PostgreSQL,
ctypes on the first heap trim. A fresh interpreter shows
what importing the serving code pulls in, so a top-level import added back
fails here instead of silently costing every tenant host.
"""

from __future__ import annotations

import json
import subprocess
import sys

#: Imported by `hamlet serve` before it answers a request.
SERVE_PATH = ("hamlet.cli", "hamlet.host.process", "hamlet.homeserver")

LAZY = (
    "PIL",
    "opentelemetry.sdk",
    "opentelemetry.exporter",
    "dns",
    "asyncpg",
    "prometheus_client",
    "logging.config",
    "ctypes",
)


def imported_after(modules: tuple[str, ...]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(done.stdout))


def test_the_serving_code_leaves_heavy_rarely_used_packages_unimported() -> None:
    loaded = imported_after(SERVE_PATH)
    assert "hamlet.homeserver" in loaded and "aiohttp" in loaded
    early = sorted(
        name for name in loaded for lazy in LAZY if name == lazy or name.startswith(f"{lazy}.")
    )
    assert early == []
