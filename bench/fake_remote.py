"""A scripted remote homeserver for federation benches, speaking the real protocol.

It federates as `127.0.0.1:<port>` over TLS with a self-signed certificate
(as tests/interop/synapse.py runs Synapse, so receivers that accept that
accept it), has its own signing key and serves it at `/_matrix/key/v2/server`.
Its rooms are linear DAGs of events it builds, hashes and signs with
Hamlet's core modules (`build_event`, auth events picked by the auth rules).

As the resident server it answers what joining a room needs: the alias
query, `make_join` and `send_join` (v2) — it checks the joiner's signature
(fetching its key) and content hash, and answers the state before the join
with its full auth chain, never omitting members (so both receivers do a
full join). As a sender it signs `/send` transactions with X-Matrix. Other
servers' transactions to it are accepted and ignored; anything else is 404.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from hamlet.core.auth_rules import auth_types_for_event
from hamlet.core.crypto import SigningKey, check_content_hash, generate_signing_key
from hamlet.core.events import Event, build_event, verify_event_signature
from hamlet.core.room_versions import RoomVersion, get_room_version
from hamlet.core.server_keys import build_key_response, parse_key_response
from hamlet.core.xmatrix import sign_request
from tests.support.tls import SelfSigned

ROOM_VERSION = "10"
FEDERATION = "/_matrix/federation"
KEY_VALIDITY_MS = 24 * 3600 * 1000


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class RoomDag:
    """One room as its resident server sees it: a single chain of events."""

    room_id: str
    version: RoomVersion
    events: dict[str, Event] = field(default_factory=dict)
    state: dict[tuple[str, str], str] = field(default_factory=dict)
    last: str = ""
    depth: int = 0

    def add(self, event: Event) -> None:
        self.events[event.event_id] = event
        if event.state_key is not None:
            self.state[(event.type, event.state_key)] = event.event_id
        self.last = event.event_id
        self.depth = max(self.depth, event.depth)

    def auth_events(
        self, type: str, state_key: str | None, sender: str, content: Mapping[str, Any]
    ) -> list[str]:
        wanted = auth_types_for_event(self.version, type, state_key, sender, content)
        return sorted(self.state[k] for k in wanted if k in self.state)

    def auth_chain(self, events: list[Event]) -> list[str]:
        seen: set[str] = set()
        todo = [a for e in events for a in e.auth_events]
        while todo:
            event_id = todo.pop()
            if event_id not in seen:
                seen.add(event_id)
                todo.extend(self.events[event_id].auth_events)
        return sorted(seen)

    def ancestors(self, start: list[str], stop: set[str], limit: int) -> list[str]:
        """Up to `limit` events from `start` back along prev_events, short of
        `stop`, newest first."""
        out: list[str] = []
        seen = set(stop)
        todo = [e for e in start if e in self.events]
        while todo and len(out) < limit:
            event_id = todo.pop(0)
            if event_id in seen:
                continue
            seen.add(event_id)
            out.append(event_id)
            todo.extend(p for p in self.events[event_id].prev_events if p in self.events)
        return out

    def pdus(self, event_ids: list[str]) -> list[dict[str, Any]]:
        return [self.events[e].get_pdu_json(include_unsigned=False) for e in event_ids]


class FakeRemote:
    def __init__(self, tls: SelfSigned, port: int) -> None:
        self.server_name = f"127.0.0.1:{port}"
        self.port = port
        self.key: SigningKey = generate_signing_key()
        self._tls = tls
        self.rooms: dict[str, RoomDag] = {}
        self.aliases: dict[str, str] = {}
        #: Other servers' verify keys, fetched to check their joins.
        self._keys: dict[str, dict[str, Any]] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._txn = 0
        #: Requests we answered 404 (what a receiver asked that we do not serve).
        self.unserved: list[str] = []

    def user(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    # --- lifecycle ---

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/_matrix/key/v2/server", self._server_keys)
        app.router.add_get(f"{FEDERATION}/v1/version", self._version)
        app.router.add_get(f"{FEDERATION}/v1/query/directory", self._directory)
        app.router.add_get(f"{FEDERATION}/v1/make_join/{{room}}/{{user}}", self._make_join)
        app.router.add_put(f"{FEDERATION}/v2/send_join/{{room}}/{{event}}", self._send_join)
        app.router.add_put(f"{FEDERATION}/v1/send/{{txn}}", self._inbound_send)
        app.router.add_post(
            f"{FEDERATION}/v1/get_missing_events/{{room}}", self._get_missing_events
        )
        app.router.add_get(f"{FEDERATION}/v1/backfill/{{room}}", self._backfill)
        app.router.add_route("*", "/{tail:.*}", self._unserved)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, "127.0.0.1", self.port, ssl_context=self._tls.server_context()
        )
        await site.start()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=False, limit=20),
            timeout=aiohttp.ClientTimeout(total=600),
        )

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- building rooms ---

    def _build(
        self,
        dag: RoomDag,
        sender: str,
        type: str,
        content: dict[str, Any],
        state_key: str | None = None,
    ) -> Event:
        return build_event(
            dag.version,
            room_id=dag.room_id,
            sender=sender,
            type=type,
            content=content,
            state_key=state_key,
            prev_events=[dag.last] if dag.last else [],
            auth_events=dag.auth_events(type, state_key, sender, content),
            depth=dag.depth + 1,
            origin_server_ts=now_ms(),
            server_name=self.server_name,
            signing_key=self.key,
        )

    def create_room(self, alias_localpart: str, members: int) -> tuple[str, str]:
        """A public room with `members` joined users of ours (the creator
        included) under `#alias_localpart`; returns (room ID, alias)."""
        room_id = f"!{alias_localpart}:{self.server_name}"
        dag = RoomDag(room_id, get_room_version(ROOM_VERSION))
        creator = self.user("creator")
        setup: list[tuple[str, dict[str, Any], str]] = [
            ("m.room.create", {"creator": creator, "room_version": ROOM_VERSION}, ""),
            ("m.room.member", {"membership": "join"}, creator),
            ("m.room.power_levels", {"users": {creator: 100}}, ""),
            ("m.room.join_rules", {"join_rule": "public"}, ""),
            ("m.room.history_visibility", {"history_visibility": "shared"}, ""),
        ]
        for type, content, state_key in setup:
            dag.add(self._build(dag, creator, type, content, state_key))
        for i in range(1, members):
            user = self.user(f"member{i}")
            dag.add(self._build(dag, user, "m.room.member", {"membership": "join"}, user))
        alias = f"#{alias_localpart}:{self.server_name}"
        self.rooms[room_id] = dag
        self.aliases[alias] = room_id
        return room_id, alias

    def messages(self, room_id: str, count: int, per_transaction: int) -> list[list[Event]]:
        """`count` messages of the creator chained on the room's last event,
        added to the room, in transactions of `per_transaction`."""
        dag = self.rooms[room_id]
        sender = self.user("creator")
        built = [
            self._add(dag, sender, "m.room.message", {"msgtype": "m.text", "body": f"msg {i}"})
            for i in range(count)
        ]
        return [built[i : i + per_transaction] for i in range(0, count, per_transaction)]

    def _add(self, dag: RoomDag, sender: str, type: str, content: dict[str, Any]) -> Event:
        event = self._build(dag, sender, type, content)
        dag.add(event)
        return event

    # --- outbound ---

    async def request(self, method: str, destination: str, path: str, body: Any = None) -> Any:
        assert self._session is not None
        headers = {
            "Authorization": sign_request(
                method=method,
                uri=path,
                origin=self.server_name,
                destination=destination,
                content=body,
                signing_key=self.key,
            )
        }
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = orjson.dumps(body)
        async with self._session.request(
            method, f"https://{destination}{path}", data=data, headers=headers
        ) as resp:
            answer = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{method} {path} to {destination}: {resp.status} {answer!r}")
            return orjson.loads(answer)

    async def send_transaction(
        self, destination: str, events: list[Event], txn_id: str | None = None
    ) -> dict[str, Any]:
        """PUT one `/send` transaction (a retry when given the ID of one
        sent before); its answer's per-PDU results."""
        if txn_id is None:
            self._txn += 1
            txn_id = f"{now_ms()}-{self._txn}"
        body = {
            "origin": self.server_name,
            "origin_server_ts": now_ms(),
            "pdus": [e.get_pdu_json(include_unsigned=False) for e in events],
            "edus": [],
        }
        answer = await self.request("PUT", destination, f"{FEDERATION}/v1/send/{txn_id}", body)
        results: dict[str, Any] = answer.get("pdus", {})
        return results

    async def _verify_keys(self, server_name: str) -> dict[str, Any]:
        if server_name not in self._keys:
            assert self._session is not None
            url = f"https://{server_name}/_matrix/key/v2/server"
            async with self._session.get(url) as resp:
                body = orjson.loads(await resp.read())
            keys = parse_key_response(body, server_name, now_ms())
            self._keys[server_name] = {k: v.key for k, v in keys.keys.items()}
        return self._keys[server_name]

    # --- inbound ---

    async def _server_keys(self, request: web.Request) -> web.Response:
        body = build_key_response(self.server_name, self.key, (), now_ms() + KEY_VALIDITY_MS)
        return _json(body)

    async def _version(self, request: web.Request) -> web.Response:
        return _json({"server": {"name": "hamlet-bench-remote", "version": "0"}})

    async def _directory(self, request: web.Request) -> web.Response:
        room_id = self.aliases.get(request.query.get("room_alias", ""))
        if room_id is None:
            return _error(404, "M_NOT_FOUND", "Unknown alias")
        return _json({"room_id": room_id, "servers": [self.server_name]})

    async def _make_join(self, request: web.Request) -> web.Response:
        dag = self.rooms.get(request.match_info["room"])
        if dag is None:
            return _error(404, "M_NOT_FOUND", "Unknown room")
        if ROOM_VERSION not in request.query.getall("ver", ["1"]):
            return _error(400, "M_INCOMPATIBLE_ROOM_VERSION", "Room version 10 is needed")
        user = request.match_info["user"]
        content = {"membership": "join"}
        template = {
            "room_id": dag.room_id,
            "sender": user,
            "type": "m.room.member",
            "state_key": user,
            "content": content,
            "prev_events": [dag.last],
            "auth_events": dag.auth_events("m.room.member", user, user, content),
            "depth": dag.depth + 1,
            "origin_server_ts": now_ms(),
            "origin": self.server_name,
        }
        return _json({"room_version": ROOM_VERSION, "event": template})

    async def _send_join(self, request: web.Request) -> web.Response:
        dag = self.rooms.get(request.match_info["room"])
        if dag is None:
            return _error(404, "M_NOT_FOUND", "Unknown room")
        pdu = orjson.loads(await request.read())
        event = Event.from_pdu(pdu, dag.version)
        joiner = event.sender.split(":", 1)[1]
        if (
            event.event_id != request.match_info["event"]
            or event.type != "m.room.member"
            or event.state_key != event.sender
            or event.content.get("membership") != "join"
            or event.prev_events != [dag.last]
        ):
            return _error(400, "M_BAD_JSON", "Not a join on our template")
        if not check_content_hash(pdu):
            return _error(403, "M_FORBIDDEN", "Bad content hash")
        verify_event_signature(pdu, dag.version, joiner, await self._verify_keys(joiner))
        state = sorted(dag.state.values())
        chain = dag.auth_chain([*(dag.events[e] for e in state), event])
        dag.add(event)
        return _json(
            {
                "origin": self.server_name,
                "state": dag.pdus(state),
                "auth_chain": dag.pdus(chain),
                "event": event.get_pdu_json(include_unsigned=False),
                "members_omitted": False,
            }
        )

    async def _inbound_send(self, request: web.Request) -> web.Response:
        # Their events are not added to our DAG: ours stay a single chain.
        return _json({"pdus": {}})

    async def _get_missing_events(self, request: web.Request) -> web.Response:
        dag = self.rooms.get(request.match_info["room"])
        if dag is None:
            return _error(404, "M_NOT_FOUND", "Unknown room")
        body = orjson.loads(await request.read())
        latest = [p for e in body.get("latest_events", []) for p in dag.events[e].prev_events]
        found = dag.ancestors(latest, set(body.get("earliest_events", [])), body.get("limit", 10))
        min_depth = body.get("min_depth", 0)
        found = [e for e in reversed(found) if dag.events[e].depth >= min_depth]
        return _json({"events": dag.pdus(found)})

    async def _backfill(self, request: web.Request) -> web.Response:
        dag = self.rooms.get(request.match_info["room"])
        if dag is None:
            return _error(404, "M_NOT_FOUND", "Unknown room")
        limit = min(int(request.query.get("limit", "10")), 100)
        found = dag.ancestors(request.query.getall("v", []), set(), limit)
        return _json(
            {"origin": self.server_name, "origin_server_ts": now_ms(), "pdus": dag.pdus(found)}
        )

    async def _unserved(self, request: web.Request) -> web.Response:
        self.unserved.append(f"{request.method} {request.path}")
        return _error(404, "M_UNRECOGNIZED", "Not served by the bench's remote server")


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _error(status: int, errcode: str, error: str) -> web.Response:
    return _json({"errcode": errcode, "error": error}, status)
