"""Registration: POST /register, /register/available, registration token validity."""

from __future__ import annotations

from typing import Any

from hamlet.api.client._fields import opt_bool, opt_str, uia_request_key
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.accounts.devices import MAX_DEVICE_ID_LENGTH
from hamlet.handlers.common.errors import AuthError, MatrixError, MissingParamError


async def post_register(req: ApiRequest) -> dict[str, Any]:
    kind = req.query.get("kind", "user")
    if kind not in ("user", "guest"):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid kind")
    body = await req.json_object(allow_empty=True)
    device_id = opt_str(body, "device_id", max_length=MAX_DEVICE_ID_LENGTH)
    if device_id == "":
        device_id = None
    display_name = opt_str(body, "initial_device_display_name")
    registration = req.hs.registration
    if body.get("type") == "m.login.application_service":
        return await _register_app_service_user(req, body, device_id, display_name)
    if req.access_token() is not None:
        raise MatrixError(
            400,
            "M_UNKNOWN",
            "An access token should not be provided on requests to /register "
            "(except if type is m.login.application_service)",
        )
    if kind == "guest":
        return await registration.register_guest(req.client_ip, device_id, display_name)
    username = opt_str(body, "username")
    password = body.get("password")
    if password is not None and not isinstance(password, str):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid password")
    return await registration.register_client(
        auth=body.get("auth"),
        request_key=uia_request_key(req),
        client_ip=req.client_ip,
        username=username,
        password=password,
        device_id=device_id,
        display_name=display_name,
        inhibit_login=opt_bool(body, "inhibit_login", False),
    )


async def _register_app_service_user(
    req: ApiRequest, body: dict[str, Any], device_id: str | None, display_name: str | None
) -> dict[str, Any]:
    token = req.access_token()
    if token is None:
        raise MatrixError(
            400,
            "M_MISSING_TOKEN",
            "Appservice token must be provided when using a type of m.login.application_service",
        )
    service = req.hs.app_services.by_token(token)
    if service is None:
        raise AuthError("M_UNKNOWN_TOKEN", "Unknown access token", soft_logout=False)
    username = opt_str(body, "username")
    if username is None:
        raise MatrixError(400, "M_MISSING_PARAM", "Desired Username is missing or not a string")
    return await req.hs.registration.register_app_service_user(
        service,
        username,
        device_id=device_id,
        display_name=display_name,
        inhibit_login=opt_bool(body, "inhibit_login", False),
    )


async def available(req: ApiRequest) -> dict[str, Any]:
    hs = req.hs
    if not hs.config.enable_registration:
        raise MatrixError(403, "M_FORBIDDEN", "Registration has been disabled")
    username = req.query.get("username")
    if username is None:
        raise MissingParamError("Missing param: username")
    await hs.registration.check_requested_username(username)
    return {"available": True}


async def token_validity(req: ApiRequest) -> dict[str, Any]:
    token = req.query.get("token")
    if token is None:
        raise MissingParamError("Missing param: token")
    return {"valid": await req.hs.registration.is_token_valid(token, req.client_ip)}


def register(router: Router) -> None:
    router.add_client("POST", "/register", post_register)
    router.add_client("GET", "/register/available", available)
    validity = "/register/m.login.registration_token/validity"
    router.add("GET", "/_matrix/client/v1" + validity, token_validity)
    router.add_client("GET", validity, token_validity)
