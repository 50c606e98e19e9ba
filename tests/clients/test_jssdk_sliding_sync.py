"""matrix-js-sdk's SlidingSync (MSC4186) against a real `hamlet serve`.

The node script (tests/clients/jssdk/sliding_sync.mjs, its matrix-js-sdk
pinned in package-lock.json and installed by `make test`) logs in, syncs a
list of rooms through a full MatrixClient until the list holds the rooms
made here, says so on stdout, and then must see the message sent here
arrive live in the room's timeline. Missing node or node_modules is a
failure, not a skip: CI has both.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.support.serve_process import V3, ServeProcess, main_config

JSSDK = Path(__file__).parent / "jssdk"
SCRIPT = JSSDK / "sliding_sync.mjs"
HOST = "main.test"
DEADLINE_S = 25.0


async def read_event(stdout: asyncio.StreamReader, expected: str) -> dict[str, Any]:
    """The script's next JSON line; anything but `expected` fails the test."""
    while True:
        line = await stdout.readline()
        assert line, f"the script exited before printing {expected!r}"
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(message, dict) and "event" in message:
            assert message["event"] == expected, message
            return message


def create_room(server: ServeProcess, token: str, name: str, **extra: Any) -> str:
    status, body = server.request(
        "POST", f"{V3}/createRoom", {"name": name, **extra}, host=HOST, token=token
    )
    assert status == 200, body
    room_id: str = body["room_id"]
    return room_id


async def test_jssdk_sliding_sync_lists_rooms_then_receives_a_new_message(
    tmp_path: Path,
) -> None:
    node = shutil.which("node")
    assert node is not None, "node is needed for the matrix-js-sdk test"
    assert (JSSDK / "node_modules" / "matrix-js-sdk").is_dir(), (
        f"run `make test` (or `npm ci` in {JSSDK}) to install matrix-js-sdk"
    )
    # Requests from the script name 127.0.0.1 as their Host: make that this
    # tenant's baseurl host.
    server = ServeProcess(tmp_path, main_config(tmp_path, public_baseurl="http://127.0.0.1/"))
    server.start()
    try:
        alice = server.register(HOST, "alice", "alice-password")
        bob = server.register(HOST, "bob")
        rooms = [
            create_room(server, bob, f"Room {i}", invite=["@alice:main.test"]) for i in range(3)
        ]
        for room_id in rooms:
            status, body = server.request(
                "POST", f"{V3}/join/{quote(room_id)}", {}, host=HOST, token=alice
            )
            assert status == 200, body
        # A room alice is not in stays out of her list.
        create_room(server, bob, "Not Alice's")

        stderr_path = tmp_path / "node-stderr.txt"
        with stderr_path.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                node,
                str(SCRIPT),
                f"http://127.0.0.1:{server.port}",
                "alice",
                "alice-password",
                ",".join(rooms),
                "hello from bob",
                cwd=JSSDK,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
            assert proc.stdout is not None
            try:
                async with asyncio.timeout(DEADLINE_S):
                    ready = await read_event(proc.stdout, "ready")
                    status, sent = server.request(
                        "PUT",
                        f"{V3}/rooms/{quote(rooms[1])}/send/m.room.message/hello",
                        {"msgtype": "m.text", "body": "hello from bob"},
                        host=HOST,
                        token=bob,
                    )
                    assert status == 200, sent
                    result = await read_event(proc.stdout, "result")
                    assert await proc.wait() == 0
            except BaseException as e:
                e.add_note(f"node stderr:\n{stderr_path.read_text(errors='replace')[-4000:]}")
                raise
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    finally:
        server.stop()

    assert ready["list_count"] == 3
    assert sorted(ready["rooms"]) == sorted(rooms)
    for i, room_id in enumerate(rooms):
        summary = ready["rooms"][room_id]
        assert summary["name"] == f"Room {i}"
        assert summary["membership"] == "join"
        # The list's timeline_limit of 5 gives each room its latest events,
        # ending with alice's own join.
        assert summary["timeline"][-1] == "m.room.member"
    assert set(rooms) <= set(ready["room_data_seen"])

    assert result["room_id"] == rooms[1]
    assert result["event_id"] == sent["event_id"]
    assert result["sender"] == "@bob:main.test"
    assert result["body"] == "hello from bob"
    assert result["last_error"] is None
