"""`hamlet serve` as an operator runs it: a real process, its log read back.

What only the production process shows: its runners' settings (a client
that disconnects cancels its request), the order it starts in (ports
before databases) and how it fails (one line, non-zero exit).
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

from tests.support.serve_process import V3, ServeProcess, main_config


def _log_line(tenant: str, logger: str, rest: str) -> str:
    """A regex for a line in Hamlet's default format, capturing the request."""
    return rf" - {re.escape(tenant)} - {re.escape(logger)} - \d+ - \w+ - (\S+) - {rest}"


def _wait_until(condition: object, deadline_s: float) -> None:
    until = time.monotonic() + deadline_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < until, "condition not met in time"
        time.sleep(0.02)


def test_a_client_disconnect_cancels_its_long_poll_and_frees_the_tenant(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path, main_config(tmp_path))
    server.start()
    try:
        server.provision("b.test")
        token = server.register("b.test", "alice")
        status, body = server.request("GET", f"{V3}/sync?timeout=0", host="b.test", token=token)
        assert status == 200, body
        since = body["next_batch"]

        poll = socket.create_connection(("127.0.0.1", server.port))
        poll.sendall(
            f"GET {V3}/sync?since={since}&timeout=30000 HTTP/1.1\r\nHost: b.test\r\n"
            f"Authorization: Bearer {token}\r\n\r\n".encode()
        )

        def polling() -> bool:
            return server.control("GET", "/tenants/b.test")[1]["active_syncs"] == 1

        _wait_until(polling, 5)
        mark = len(server.log_lines())
        poll.close()  # the client goes away; the poll had 30 s to run

        cancelled = server.wait_for(
            _log_line(
                "b.test",
                "hamlet.access",
                r".* Processed request: ([\d.]+)sec/.* 499 \"GET /_matrix/client/v3/sync\"",
            ),
            5,
            after=mark,
        )
        # Logged by the request itself, under its own context, as soon as it went.
        assert cancelled.group(1).startswith("GET-")
        assert float(cancelled.group(2)) < 5
        assert server.control("GET", "/tenants/b.test")[1]["inflight"] == 0

        started = time.monotonic()
        status, body = server.control("DELETE", "/tenants/b.test")
        assert status == 200, body
        assert time.monotonic() - started < 3  # the drain timeout is 10 s
        assert not [line for line in server.log_lines() if "still had" in line]
    finally:
        assert server.stop() == 0


def test_a_failing_service_start_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path, main_config(tmp_path))
    server.start(
        prelude=(
            "from hamlet.handlers.media.repository import MediaRepository\n"
            "def boom(self):\n    raise RuntimeError('media store unwritable')\n"
            "MediaRepository.start = boom\n"
        ),
        wait=False,
    )
    assert server.wait_exit(20) != 0
    lines = server.stderr().splitlines()
    assert lines == [
        "hamlet serve: the main homeserver main.test failed to start: "
        "RuntimeError: media store unwritable"
    ]
    # The traceback is in the log, once, under the tenant's context.
    tracebacks = [line for line in server.log_lines() if "Start of main.test failed" in line]
    assert len(tracebacks) == 1 and " - main.test - " in tracebacks[0]


def test_a_port_in_use_exits_with_one_line_before_any_migration(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ServeProcess(tmp_path, main_config(tmp_path, port=port))
        server.start(wait=False)
        assert server.wait_exit(20) != 0
    assert server.stderr().splitlines() == [
        f"hamlet serve: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert not (tmp_path / "main.test" / "homeserver.db").exists()
