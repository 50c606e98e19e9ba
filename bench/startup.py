"""Startup time, where it goes, and idle memory, next to Synapse's.

    .venv/bin/python bench/startup.py [--runs 5] [--tenants 100] [--synapse-python PATH]

Writes configs into a temporary directory (SQLite; every tenant with its own
database, signing key and media store, listed through the main config's
`tenants:` key), spawns `hamlet serve` on a free port and times it from
spawning to /_matrix/client/versions answering 200 on an empty database,
then reads its VmRSS once idle. Runs `--runs` times, interleaved with
Synapse (SQLite, IP-literal server name, config from its own
`--generate-config`) when a Python with matrix-synapse is given or found at
/tmp/synapse-venv/bin/python; prints medians and Hamlet/Synapse ratios.

Both servers run from bytecode caches, as an installed server does (pip
compiles Synapse's at install): the children get a fresh
PYTHONPYCACHEPREFIX, warmed by one unmeasured start, whatever
PYTHONDONTWRITEBYTECODE says. `hamlet_cold_startup_s` is one start without
any cache, every module compiled from source.

The breakdown of a Hamlet start, medians of the same runs:

* interpreter_s:  `python -c pass`
* imports_s:      importing hamlet.cli and the serving code as `hamlet serve`
                  does, timed in the interpreter
* setup_*_s:      the steps the homeserver logs in its "Set up in" line (signing
                  key, database open, migrations, service construction, load)
* listening_s:    from spawning to the "Listening on port" log line
* rest_s:         listening_s less the above: config load, logging, the event
                  loop, binding, the homeserver's start and the listener's
* first_answer_s: from listening to /versions answering (includes polling)
* *_cpu_s:        the same in CPU seconds (user + system), steadier when the
                  machine is busy; `startup_cpu_s` is the server's CPU until
                  /versions answered
* imports_ms:     `-X importtime` self time summed per top-level package
                  (hamlet per subpackage), the largest first

Prints one JSON object of numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.chat import find_synapse_python  # noqa: E402

SETTLE_S = 2.0
TIMEOUT_S = 300.0
# As `hamlet serve` imports (collector off, then frozen), or plainly where the
# tree measured predates that (a before/after comparison through PYTHONPATH).
IMPORTS = (
    "import hamlet.cli\n"
    "load = getattr(hamlet.cli, 'import_serving_code', None)\n"
    "load() if load else __import__('hamlet.host.process')"
)
TOP_PACKAGES = 15
SETUP_LINE = re.compile(r"Set up in [0-9.]+s: (.*)$")
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(pycache: Path, write: bool = True) -> dict[str, str]:
    """The children's environment: bytecode cached under `pycache` (written there or not)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPYCACHEPREFIX": str(pycache)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not write:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


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


def write_synapse_config(python: str, root: Path, port: int, env: dict[str, str]) -> Path:
    """Synapse's own generated config (SQLite), moved to a free port on 127.0.0.1."""
    import yaml

    config = root / "homeserver.yaml"
    subprocess.run(
        [
            python,
            "-m",
            "synapse.app.homeserver",
            "--server-name",
            "127.0.0.1",
            "--config-path",
            str(config),
            "--data-directory",
            str(root),
            "--generate-config",
            "--report-stats=no",
        ],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
    )
    raw = yaml.safe_load(config.read_text())
    raw["listeners"] = [
        {
            "port": port,
            "bind_addresses": ["127.0.0.1"],
            "type": "http",
            "tls": False,
            "x_forwarded": False,
            "resources": [{"names": ["client", "federation"], "compress": False}],
        }
    ]
    config.write_text(yaml.safe_dump(raw))
    return config


def cpu_s(pid: int) -> float:
    """User + system CPU the process has used: steadier than wall time on a busy machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def wait_for_versions(port: int, host: str, proc: subprocess.Popen[bytes], started: float) -> float:
    url = f"http://127.0.0.1:{port}/_matrix/client/versions"
    request = urllib.request.Request(url, headers={"Host": host})
    while time.monotonic() - started < TIMEOUT_S:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(request, timeout=1) as resp:
                if resp.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.005)
    raise RuntimeError("the server did not answer in time")


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


Popen = subprocess.Popen[bytes]


@contextmanager
def spawned(argv: list[str], log: Path, env: dict[str, str], cwd: Path) -> Iterator[Popen]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def log_breakdown(log: Path, spawned_at: float) -> dict[str, float]:
    """The setup steps and when the listener was up, from the serve log."""
    found: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        setup = SETUP_LINE.search(line)
        if setup and "setup_signing_key_s" not in found:
            for part in setup.group(1).split():
                name, _, seconds = part.partition("=")
                found[f"setup_{name}_s"] = float(seconds)
        stamp = LOG_TIME.match(line)
        if stamp and "Listening on port" in line and "listening_s" not in found:
            at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            found["listening_s"] = at - spawned_at
    return found


def run_hamlet(tenants: int, env: dict[str, str], rss: bool = True) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="hamlet-bench-") as tmp:
        root = Path(tmp)
        port = free_port()
        config = write_configs(root, tenants, port)
        argv = [sys.executable, "-m", "hamlet.cli", "serve", "--config", str(config)]
        spawned_at = time.time()
        started = time.monotonic()
        with spawned(argv, root / "serve.log", env, root) as proc:
            result = {"startup_s": wait_for_versions(port, "main.bench", proc, started)}
            result["startup_cpu_s"] = cpu_s(proc.pid)
            if rss:
                result["rss_mb"] = settled_rss(proc.pid)
        result.update(log_breakdown(root / "serve.log", spawned_at))
        if "listening_s" in result:
            result["first_answer_s"] = result["startup_s"] - result["listening_s"]
        return result


def run_synapse(python: str, env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="synapse-bench-") as tmp:
        root = Path(tmp)
        port = free_port()
        config = write_synapse_config(python, root, port, env)
        argv = [python, "-m", "synapse.app.homeserver", "--config-path", str(config)]
        started = time.monotonic()
        with spawned(argv, root / "stdout.log", env, root) as proc:
            startup = wait_for_versions(port, "127.0.0.1", proc, started)
            used = cpu_s(proc.pid)
            return {"startup_s": startup, "startup_cpu_s": used, "rss_mb": settled_rss(proc.pid)}


def timed(argv: list[str], env: dict[str, str]) -> dict[str, float]:
    """Wall and CPU seconds of running `argv` to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"wall": wall, "cpu": used}


def import_times(env: dict[str, str]) -> dict[str, float]:
    """Wall and CPU seconds of the serving code's imports, timed inside the interpreter."""
    code = (
        "import time\n"
        "wall, cpu = time.perf_counter(), time.process_time()\n"
        f"{IMPORTS}\n"
        "print(time.perf_counter() - wall, time.process_time() - cpu)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    wall, cpu = done.stdout.split()
    return {"wall": float(wall), "cpu": float(cpu)}


def imports_by_package(env: dict[str, str]) -> dict[str, float]:
    """`-X importtime` self times in ms, per top-level package (hamlet per subpackage)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", IMPORTS],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    totals: Counter[str] = Counter()
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if m is None:
            continue
        parts = m.group(2).split(".")
        package = ".".join(parts[:2]) if parts[0] == "hamlet" else parts[0]
        totals[package] += int(m.group(1))
    ranked = totals.most_common()
    top = {name: round(us / 1000, 1) for name, us in ranked[:TOP_PACKAGES]}
    top["others"] = round(sum(us for _, us in ranked[TOP_PACKAGES:]) / 1000, 1)
    top["total"] = round(sum(totals.values()) / 1000, 1)
    return top


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = [key for key in runs[0] if all(key in run for run in runs)]
    return {key: statistics.median(run[key] for run in runs) for key in keys}


def repeat(runs: int, *fns: Callable[[], dict[str, float]]) -> list[list[dict[str, float]]]:
    """Each fn `runs` times, interleaved, so a noisy neighbour slows them alike."""
    results: list[list[dict[str, float]]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, out in zip(fns, results, strict=True):
            out.append(fn())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tenants", type=int, default=100, help="0: skip the many-tenant run")
    parser.add_argument("--synapse-python", default=None)
    parser.add_argument("--no-synapse", action="store_true")
    args = parser.parse_args()
    synapse = None if args.no_synapse else find_synapse_python(args.synapse_python)
    pycache = Path(tempfile.mkdtemp(prefix="hamlet-bench-pycache-"))
    try:
        env = child_env(pycache)
        # Unmeasured: writes the bytecode caches the measured runs read.
        run_hamlet(1, env, rss=False)
        if synapse is not None:
            run_synapse(synapse, env)
        out: dict[str, object] = {"runs": args.runs}
        fns: list[Callable[[], dict[str, float]]] = [lambda: run_hamlet(1, env)]
        if synapse is not None:
            fns.append(lambda: run_synapse(synapse, env))
        interpreter = [timed([sys.executable, "-c", "pass"], env) for _ in range(args.runs)]
        imports = [import_times(env) for _ in range(args.runs)]
        results = repeat(args.runs, *fns)
        hamlet = medians(results[0])
        for key in ("startup_s", "startup_cpu_s", "rss_mb"):
            out[f"hamlet_{key}"] = round(hamlet[key], 3)
        if synapse is not None:
            syn = medians(results[1])
            for key in ("startup_s", "startup_cpu_s", "rss_mb"):
                out[f"synapse_{key}"] = round(syn[key], 3)
                out[f"{key}_ratio_hamlet_to_synapse"] = round(hamlet[key] / syn[key], 2)
        interpreter_s = statistics.median(t["wall"] for t in interpreter)
        interpreter_cpu_s = statistics.median(t["cpu"] for t in interpreter)
        breakdown = {
            "interpreter_s": interpreter_s,
            "imports_s": statistics.median(t["wall"] for t in imports),
        }
        setup = {key: value for key, value in hamlet.items() if key.startswith("setup_")}
        breakdown.update(setup)
        if "listening_s" in hamlet:
            accounted = sum(breakdown.values())
            breakdown["rest_s"] = hamlet["listening_s"] - accounted
            breakdown["listening_s"] = hamlet["listening_s"]
            breakdown["first_answer_s"] = hamlet["first_answer_s"]
        breakdown["interpreter_cpu_s"] = interpreter_cpu_s
        breakdown["imports_cpu_s"] = (
            statistics.median(t["cpu"] for t in imports) - interpreter_cpu_s
        )
        out["breakdown"] = {key: round(value, 3) for key, value in breakdown.items()}
        out["imports_ms"] = imports_by_package(env)
        with tempfile.TemporaryDirectory(prefix="hamlet-bench-nocache-") as empty:
            # An empty cache, never written: every module compiled from source.
            cold = run_hamlet(1, child_env(Path(empty), write=False), rss=False)
        out["hamlet_cold_startup_s"] = round(cold["startup_s"], 3)
        if args.tenants > 1:
            many = run_hamlet(args.tenants, env)
            out[f"hamlet_startup_{args.tenants}_tenants_s"] = round(many["startup_s"], 3)
            out[f"hamlet_rss_{args.tenants}_tenants_mb"] = round(many["rss_mb"], 1)
            extra_kib = (many["rss_mb"] - hamlet["rss_mb"]) * 1024 / (args.tenants - 1)
            out["hamlet_rss_per_extra_tenant_kib"] = round(extra_kib)
        print(json.dumps(out, indent=1))
    finally:
        shutil.rmtree(pycache, ignore_errors=True)


if __name__ == "__main__":
    main()
