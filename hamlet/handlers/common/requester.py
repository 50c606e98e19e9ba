"""Who is making a request, and what the API layer tells the handlers about the client.

Handlers never see HTTP: the API layer reads the access token, address and
user agent off the request into a `ClientInfo`, and `AuthHandler` turns that
into a `Requester`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """What a request says about its client, as far as authentication cares."""

    access_token: str | None
    ip: str
    user_agent: str | None = None
    #: An application service's identity assertion: the `user_id` query
    #: parameter, and the device (MSC3202's `org.matrix.msc3202.device_id`
    #: or `device_id` parameter) it acts as. Ignored for other tokens.
    assert_user_id: str | None = None
    assert_device_id: str | None = None


@dataclass(frozen=True, slots=True)
class Requester:
    """Who is making a request."""

    user_id: str
    device_id: str | None
    is_guest: bool = False
    is_admin: bool = False
    shadow_banned: bool = False
    # The SHA-256 hash of the access token used (never the token itself).
    token_id: str | None = None
    #: The application service whose as_token authenticated the request.
    app_service_id: str | None = None
    #: False for an application service registered with `rate_limited: false`.
    ratelimited: bool = True
