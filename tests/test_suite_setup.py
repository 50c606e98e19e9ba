"""The suite refuses to skip PostgreSQL silently: missing binaries stop it unless opted out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs pytest in a child process in which no PostgreSQL binary can be found.
_WITHOUT_POSTGRES = """
import sys
import pytest
import tests.support.postgres as pg
pg._find_binary = lambda name: None
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "--collect-only", sys.argv[1]]))
"""


def _run_without_postgres(**env: str) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if k != "HAMLET_SKIP_POSTGRES"}
    child_env.update(env, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_POSTGRES, "tests/core/test_canonical_json.py"],
        cwd=ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_postgres_stops_the_run_with_a_clear_message() -> None:
    result = _run_without_postgres()
    assert result.returncode == 4, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "PostgreSQL server binaries not found (initdb, postgres" in output
    assert "HAMLET_SKIP_POSTGRES=1" in output


def test_opting_out_runs_without_postgres() -> None:
    result = _run_without_postgres(HAMLET_SKIP_POSTGRES="1")
    assert result.returncode == 0, result.stdout + result.stderr
