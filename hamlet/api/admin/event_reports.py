"""Event reports: users report (/rooms/{roomId}/report/{eventId}), admins read them."""

from __future__ import annotations

from typing import Any

from hamlet.api.admin._params import direction, offset_and_limit
from hamlet.api.admin.auth import require_admin
from hamlet.api.request import ApiRequest, parse_int
from hamlet.api.router import Router
from hamlet.handlers.common.errors import InvalidParamError

BASE = "/_synapse/admin/v1/event_reports"


def _report_id(req: ApiRequest) -> int:
    value = parse_int(req.params["reportId"])
    if value is None or value < 0:
        raise InvalidParamError(
            "The report_id parameter must be a string representing a positive integer."
        )
    return value


async def report_event(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object(allow_empty=True)
    await req.hs.event_reports.report(
        requester.user_id, req.params["roomId"], req.params["eventId"], body
    )
    return {}


async def list_reports(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    start, limit = offset_and_limit(req)
    return await req.hs.event_reports.list_reports(
        start=start,
        limit=limit,
        backwards=direction(req, "b") == "b",
        room_id=req.query.get("room_id") or None,
        user_id=req.query.get("user_id") or None,
        sender=req.query.get("sender_user_id") or None,
    )


async def get_report(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    return await req.hs.event_reports.get_report(_report_id(req))


async def delete_report(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    await req.hs.event_reports.delete_report(_report_id(req))
    return {}


def register(router: Router) -> None:
    router.add_client("POST", "/rooms/{roomId}/report/{eventId}", report_event)
    router.add("GET", BASE, list_reports)
    router.add("GET", f"{BASE}/{{reportId}}", get_report)
    router.add("DELETE", f"{BASE}/{{reportId}}", delete_report)
