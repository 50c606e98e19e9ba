"""Push rules: /pushrules (only the `global` scope)."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.common.errors import BadJsonError
from hamlet.handlers.push.rules import check_kind, check_scope


async def get_all(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    return await req.hs.push_rules.get_rules(requester.user_id)


async def get_scope(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    check_scope(req.params["scope"])
    rules: dict[str, Any] = (await req.hs.push_rules.get_rules(requester.user_id))["global"]
    return rules


async def get_kind(req: ApiRequest) -> list[dict[str, Any]]:
    requester = await req.authenticate()
    check_scope(req.params["scope"])
    return await req.hs.push_rules.get_kind(requester.user_id, req.params["kind"])


async def get_rule(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    check_scope(req.params["scope"])
    return await req.hs.push_rules.get_rule(
        requester.user_id, req.params["kind"], req.params["ruleId"]
    )


async def put_rule(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    check_scope(req.params["scope"])
    check_kind(req.params["kind"])
    body = await req.json_object()
    await req.hs.push_rules.add_rule(
        requester.user_id,
        req.params["kind"],
        req.params["ruleId"],
        body,
        before=req.query.get("before"),
        after=req.query.get("after"),
    )
    return {}


async def delete_rule(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    check_scope(req.params["scope"])
    await req.hs.push_rules.delete_rule(requester.user_id, req.params["kind"], req.params["ruleId"])
    return {}


async def get_enabled(req: ApiRequest) -> dict[str, Any]:
    rule = await get_rule(req)
    return {"enabled": rule["enabled"]}


async def put_enabled(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    check_scope(req.params["scope"])
    check_kind(req.params["kind"])
    body = await req.json_object()
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        raise BadJsonError("'enabled' must be a boolean")
    await req.hs.push_rules.set_enabled(
        requester.user_id, req.params["kind"], req.params["ruleId"], enabled
    )
    return {}


async def get_actions(req: ApiRequest) -> dict[str, Any]:
    rule = await get_rule(req)
    return {"actions": rule["actions"]}


async def put_actions(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    check_scope(req.params["scope"])
    check_kind(req.params["kind"])
    body = await req.json_object()
    await req.hs.push_rules.set_actions(
        requester.user_id, req.params["kind"], req.params["ruleId"], body.get("actions")
    )
    return {}


def register(router: Router) -> None:
    router.add_client("GET", "/pushrules", get_all)
    router.add_client("GET", "/pushrules/", get_all)
    router.add_client("GET", "/pushrules/{scope}", get_scope)
    router.add_client("GET", "/pushrules/{scope}/", get_scope)
    router.add_client("GET", "/pushrules/{scope}/{kind}/", get_kind)
    rule = "/pushrules/{scope}/{kind}/{ruleId}"
    router.add_client("GET", rule, get_rule)
    router.add_client("PUT", rule, put_rule)
    router.add_client("DELETE", rule, delete_rule)
    router.add_client("GET", rule + "/enabled", get_enabled)
    router.add_client("PUT", rule + "/enabled", put_enabled)
    router.add_client("GET", rule + "/actions", get_actions)
    router.add_client("PUT", rule + "/actions", put_actions)
