"""User-Interactive Authentication: sessions, stages and flows.

A session is bound to the request that started it (method and path, and
the user for an authenticated endpoint): it cannot be reused to authorise
another operation. Sessions live in memory, per homeserver, and expire
through the homeserver's Clock; a finished operation ends its session.

Stage checkers are supplied by whoever builds the handler (password, dummy,
registration token...). A checker returns a value to remember for the
stage, or raises `StageFailedError`; it may register cleanup work (such as
giving back a reserved registration token) to run if the session expires
before the operation completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hamlet.handlers.common.errors import BadJsonError, ForbiddenError, MatrixError
from hamlet.handlers.common.service import ServiceBase
from hamlet.runtime.clock import Clock, DelayedCall

logger = logging.getLogger(__name__)

DEFAULT_SESSION_LIFETIME_S = 3600.0
MAX_SESSIONS = 10_000

Flows = list[list[str]]


class StageFailedError(Exception):
    def __init__(self, message: str, errcode: str = "M_FORBIDDEN") -> None:
        super().__init__(message)
        self.message = message
        self.errcode = errcode


class UiaRequiredError(MatrixError):
    """The 401 telling the client which stages remain (and why the last failed)."""

    def __init__(
        self,
        session_id: str,
        flows: Flows,
        params: Mapping[str, Any],
        completed: list[str],
        failure: StageFailedError | None = None,
    ) -> None:
        message = failure.message if failure is not None else "Additional authentication required"
        errcode = failure.errcode if failure is not None else "M_UNAUTHORIZED"
        super().__init__(401, errcode, message)
        self.body: dict[str, Any] = {
            "session": session_id,
            "flows": [{"stages": list(f)} for f in flows],
            "params": dict(params),
            "completed": completed,
        }
        if failure is not None:
            self.body["errcode"] = failure.errcode
            self.body["error"] = failure.message

    def to_json(self) -> dict[str, Any]:
        return self.body


@dataclass(eq=False)
class UiaSession:
    session_id: str
    request_key: str
    user_id: str | None
    completed: dict[str, Any] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    finished: bool = False
    expiry: DelayedCall | None = None
    on_expire: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


StageChecker = Callable[[dict[str, Any], UiaSession], Awaitable[Any]]


class UiaHandler(ServiceBase):
    def __init__(
        self,
        clock: Clock,
        checkers: Mapping[str, StageChecker],
        *,
        session_lifetime_s: float = DEFAULT_SESSION_LIFETIME_S,
    ) -> None:
        self._clock = clock
        self._checkers = dict(checkers)
        self._lifetime = session_lifetime_s
        self._sessions: OrderedDict[str, UiaSession] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def add_checker(self, stage: str, checker: StageChecker) -> None:
        self._checkers[stage] = checker

    @contextlib.asynccontextmanager
    async def authenticate(
        self,
        auth: object,
        *,
        request_key: str,
        flows: Flows,
        user_id: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[UiaSession]:
        """Run the stages in `auth`; the body runs once a flow is complete.

        Raises `UiaRequiredError` (401) while no flow is complete. The body
        runs holding the session, so concurrent requests on one session take
        turns; if the body returns, the session ends, if it raises, the
        session stays for a retry.
        """
        if auth is not None and not isinstance(auth, dict):
            raise BadJsonError("'auth' must be an object")
        session = self._session_for(auth, request_key, user_id)
        async with session.lock:
            if session.finished:
                raise MatrixError(400, "M_UNKNOWN", f"Unknown session ID: {session.session_id}")
            failure: StageFailedError | None = None
            stage = auth.get("type") if auth is not None else None
            if stage is not None:
                if not isinstance(stage, str):
                    raise BadJsonError("'auth.type' must be a string")
                allowed = {s for f in flows for s in f}
                checker = self._checkers.get(stage)
                if stage not in allowed or checker is None:
                    failure = StageFailedError(
                        f"Unrecognised auth type {stage!r}", errcode="M_UNRECOGNIZED"
                    )
                elif stage not in session.completed:
                    assert auth is not None
                    try:
                        session.completed[stage] = await checker(auth, session)
                    except StageFailedError as e:
                        failure = e
            if not any(all(s in session.completed for s in f) for f in flows):
                raise UiaRequiredError(
                    session.session_id, flows, params or {}, list(session.completed), failure
                )
            yield session
            self._end(session)

    def _session_for(
        self, auth: dict[str, Any] | None, request_key: str, user_id: str | None
    ) -> UiaSession:
        sid = auth.get("session") if auth is not None else None
        if sid is None:
            return self._new_session(request_key, user_id)
        if not isinstance(sid, str):
            raise BadJsonError("'auth.session' must be a string")
        session = self._sessions.get(sid)
        if session is None:
            raise MatrixError(400, "M_UNKNOWN", f"Unknown session ID: {sid}")
        if session.request_key != request_key or session.user_id != user_id:
            raise ForbiddenError(
                "Requested operation has changed during the UI authentication session."
            )
        return session

    def _new_session(self, request_key: str, user_id: str | None) -> UiaSession:
        while len(self._sessions) >= MAX_SESSIONS:
            _, oldest = self._sessions.popitem(last=False)
            self._expire(oldest)
        sid = secrets.token_urlsafe(18)
        session = UiaSession(sid, request_key, user_id)
        session.expiry = self._clock.call_later(self._lifetime, self._expire, session)
        self._sessions[sid] = session
        return session

    def _end(self, session: UiaSession) -> None:
        session.finished = True
        session.on_expire.clear()
        if session.expiry is not None:
            session.expiry.cancel()
        self._sessions.pop(session.session_id, None)

    def _expire(self, session: UiaSession) -> None:
        if session.finished:
            return
        cleanups = list(session.on_expire)
        self._end(session)
        for cleanup in cleanups:
            self._clock.run_as_background_process("uia_session_expired", cleanup)

    async def shutdown(self) -> None:
        # Timers die with the Clock; reserved registration tokens are left
        # pending (the admin API can see and fix them), as a crash would.
        self._sessions.clear()
