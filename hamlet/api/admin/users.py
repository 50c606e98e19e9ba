"""Synapse's user admin API: /_synapse/admin/v{1,2,3}/users..., deactivate, whois..."""

from __future__ import annotations

from typing import Any

from hamlet.api.admin._params import direction, offset_and_limit, optional_bool, optional_int
from hamlet.api.admin.auth import require_admin
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.admin.users import UserListQuery, user_details_json
from hamlet.handlers.common.errors import InvalidParamError, MatrixError, MissingParamError

V1 = "/_synapse/admin/v1"
V2 = "/_synapse/admin/v2"
V3 = "/_synapse/admin/v3"


def _list_query(req: ApiRequest, *, v3: bool) -> UserListQuery:
    order_by = req.query.get("order_by", "name")
    guests = req.query_bool("guests", True)
    if v3:
        # v3: absent means "don't filter", true "only deactivated", false "none".
        deactivated = optional_bool(req, "deactivated")
    else:
        # v2: deactivated users are listed only with deactivated=true.
        deactivated = None if req.query_bool("deactivated", False) else False
    locked = None if req.query_bool("locked", False) else False
    name = req.query.get("name") or None
    user_id = req.query.get("user_id") or None
    return UserListQuery(
        name=name,
        user_id=user_id,
        guests=None if guests else False,
        deactivated=deactivated,
        admins=optional_bool(req, "admins"),
        locked=locked,
        not_user_types=tuple(req.query.getall("not_user_type", [])),
        order_by=order_by,
        direction=direction(req, "f"),
    )


async def list_users_v2(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    start, limit = offset_and_limit(req)
    return await req.hs.admin_users.list_users(_list_query(req, v3=False), start, limit)


async def list_users_v3(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    start, limit = offset_and_limit(req)
    return await req.hs.admin_users.list_users(_list_query(req, v3=True), start, limit)


async def get_user(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    return user_details_json(await req.hs.admin_users.get_user(req.params["userId"]))


async def put_user(req: ApiRequest) -> tuple[int, dict[str, Any]]:
    requester = await require_admin(req)
    body = await req.json_object()
    return await req.hs.admin_users.create_or_modify(requester, req.params["userId"], body)


async def get_admin(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    user = await req.hs.admin_users.get_user(req.params["userId"])
    return {"admin": user.admin}


async def put_admin(req: ApiRequest) -> dict[str, Any]:
    requester = await require_admin(req)
    body = await req.json_object()
    admin = body.get("admin")
    if admin is None:
        raise MissingParamError("Missing params: admin")
    if not isinstance(admin, bool):
        raise InvalidParamError("'admin' parameter is not of type boolean")
    user = await req.hs.admin_users.get_user(req.params["userId"])
    await req.hs.admin_users.set_admin(requester, user.name, admin)
    return {}


async def deactivate(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    body = await req.json_object(allow_empty=True)
    erase = body.get("erase", False)
    if not isinstance(erase, bool):
        raise InvalidParamError("Param 'erase' must be a boolean, if given")
    handler = req.hs.admin_users
    handler.require_local(req.params["userId"], "Can only deactivate local users")
    user = await handler.get_user(req.params["userId"])
    await handler.deactivate(user.name, erase=erase)
    return {"id_server_unbind_result": "success"}


async def reset_password(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    body = await req.json_object()
    new_password = body.get("new_password")
    if new_password is None:
        raise MissingParamError("Missing params: new_password")
    if not isinstance(new_password, str) or len(new_password) > 512:
        raise InvalidParamError("Invalid password")
    logout_devices = body.get("logout_devices", True)
    if not isinstance(logout_devices, bool):
        raise InvalidParamError("'logout_devices' parameter is not of type boolean")
    handler = req.hs.admin_users
    handler.require_local(req.params["userId"], "This endpoint can only be used with local users")
    user = await handler.get_user(req.params["userId"])
    await handler.reset_password(user.name, new_password, logout_devices=logout_devices)
    return {}


async def whois(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    user = await req.hs.admin_users.get_user(req.params["userId"])
    return await req.hs.admin_users.whois(user.name)


async def joined_rooms(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    user = await req.hs.admin_users.get_user(req.params["userId"])
    return await req.hs.admin_users.joined_rooms(user.name)


async def login_as(req: ApiRequest) -> dict[str, Any]:
    requester = await require_admin(req)
    body = await req.json_object(allow_empty=True)
    valid_until_ms = optional_int(body, "valid_until_ms")
    return await req.hs.admin_users.login_as(requester, req.params["userId"], valid_until_ms)


async def username_available(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    username = req.query.get("username")
    if username is None:
        raise MissingParamError("Missing string query parameter 'username'")
    return await req.hs.admin_users.username_available(username)


async def shadow_ban(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    handler = req.hs.admin_users
    handler.require_local(req.params["userId"], "Only local users can be shadow-banned")
    user = await handler.get_user(req.params["userId"])
    await handler.set_shadow_banned(user.name, True)
    return {}


async def unshadow_ban(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    handler = req.hs.admin_users
    handler.require_local(req.params["userId"], "Only local users can be shadow-banned")
    user = await handler.get_user(req.params["userId"])
    await handler.set_shadow_banned(user.name, False)
    return {}


async def get_override_ratelimit(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    user = await req.hs.admin_users.get_user(req.params["userId"])
    override = await req.hs.ratelimit_overrides.get(user.name)
    if override is None:
        return {}
    return {"messages_per_second": override[0], "burst_count": override[1]}


async def set_override_ratelimit(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    user = await req.hs.admin_users.get_user(req.params["userId"])
    body = await req.json_object(allow_empty=True)
    values = {}
    for name in ("messages_per_second", "burst_count"):
        value = body.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidParamError(f"{name!r} parameter must be a positive int")
        values[name] = value
    await req.hs.ratelimit_overrides.set(
        user.name, values["messages_per_second"], values["burst_count"]
    )
    return values


async def delete_override_ratelimit(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    user = await req.hs.admin_users.get_user(req.params["userId"])
    await req.hs.ratelimit_overrides.delete(user.name)
    return {}


async def client_whois(req: ApiRequest) -> dict[str, Any]:
    """`GET /_matrix/client/v3/admin/whois/{userId}`: admins, or users about themselves."""
    requester = await req.authenticate()
    user_id = req.params["userId"]
    if not requester.is_admin and requester.user_id != user_id:
        raise MatrixError(403, "M_FORBIDDEN", "You are not a server admin")
    user = await req.hs.admin_users.get_user(user_id)
    return await req.hs.admin_users.whois(user.name)


def register(router: Router) -> None:
    router.add("GET", f"{V2}/users", list_users_v2)
    router.add("GET", f"{V3}/users", list_users_v3)
    router.add("GET", f"{V2}/users/{{userId}}", get_user)
    router.add("PUT", f"{V2}/users/{{userId}}", put_user)
    router.add("GET", f"{V1}/users/{{userId}}/admin", get_admin)
    router.add("PUT", f"{V1}/users/{{userId}}/admin", put_admin)
    router.add("POST", f"{V1}/deactivate/{{userId}}", deactivate)
    router.add("POST", f"{V1}/reset_password/{{userId}}", reset_password)
    router.add("GET", f"{V1}/whois/{{userId}}", whois)
    router.add("GET", f"{V1}/users/{{userId}}/joined_rooms", joined_rooms)
    router.add("POST", f"{V1}/users/{{userId}}/login", login_as)
    router.add("GET", f"{V1}/username_available", username_available)
    # Synapse's verb is POST; PUT is accepted too.
    router.add("POST", f"{V1}/users/{{userId}}/shadow_ban", shadow_ban)
    router.add("PUT", f"{V1}/users/{{userId}}/shadow_ban", shadow_ban)
    router.add("DELETE", f"{V1}/users/{{userId}}/shadow_ban", unshadow_ban)
    router.add("GET", f"{V1}/users/{{userId}}/override_ratelimit", get_override_ratelimit)
    router.add("POST", f"{V1}/users/{{userId}}/override_ratelimit", set_override_ratelimit)
    router.add("DELETE", f"{V1}/users/{{userId}}/override_ratelimit", delete_override_ratelimit)
    router.add_client("GET", "/admin/whois/{userId}", client_whois)
