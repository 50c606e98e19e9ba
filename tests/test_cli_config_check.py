"""`hamlet config check FILE`."""

from __future__ import annotations

from pathlib import Path

import pytest

from hamlet.cli import main


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_config_check_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write(
        tmp_path / "hs.yaml",
        "server_name: ok.test\n"
        "database: {name: sqlite3, args: {database: hs.db}}\n"
        "registration_shared_secret: xyz\n",
    )
    assert main(["config", "check", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith(f"{cfg}: OK")


def test_config_check_reports_every_error_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write(
        tmp_path / "hs.yaml",
        "server_name: 'not a name!'\nlisteners: [{port: 99999}]\nbcrypt_rounds: many\n",
    )
    assert main(["config", "check", str(cfg)]) != 0
    out = capsys.readouterr().out
    errors = [line for line in out.splitlines() if ": error: " in line]
    assert len(errors) >= 3, out
    assert any("server_name" in e for e in errors)
    assert any("listeners[0].port" in e for e in errors)
    assert any("bcrypt_rounds" in e for e in errors)
    assert "OK" not in out


def test_config_check_missing_file_and_bad_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check", str(tmp_path / "missing.yaml")]) != 0
    assert "error" in capsys.readouterr().out
    bad = write(tmp_path / "bad.yaml", "server_name: [unclosed\n")
    assert main(["config", "check", str(bad)]) != 0
    assert "error" in capsys.readouterr().out


def test_config_check_checks_tenants(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    write(
        tenants / "b.yaml",
        "server_name: a.test\ndatabase: {name: sqlite3, args: {database: other.db}}\n",
    )
    cfg = write(
        tmp_path / "hs.yaml",
        "server_name: a.test\n"
        "database: {name: sqlite3, args: {database: hs.db}}\n"
        "tenants: [tenants]\n",
    )
    assert main(["config", "check", str(cfg)]) != 0
    out = capsys.readouterr().out
    assert "server_name: already used" in out


def test_config_check_warns_of_a_rate_limit_that_never_refills(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write(
        tmp_path / "hs.yaml",
        "server_name: ok.test\n"
        "database: {name: sqlite3, args: {database: hs.db}}\n"
        "registration_shared_secret: xyz\n"
        "rc_message: {per_second: 0, burst_count: 5}\n"
        "rc_login: {failed_attempts: {per_second: 0.0, burst_count: 3}}\n"
        "rc_joins: {local: {per_second: 0.1, burst_count: 10}}\n",
    )
    assert main(["config", "check", str(cfg)]) == 0
    warnings = [line for line in capsys.readouterr().out.splitlines() if ": warning: " in line]
    keys = sorted(w.split(": warning: ")[1].split(":")[0] for w in warnings)
    assert keys == ["'rc_login.failed_attempts.per_second'", "'rc_message.per_second'"]
    assert all("never refills" in w for w in warnings)
