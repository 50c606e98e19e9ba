"""POST /createRoom: the initial events of a new room, in Synapse's order."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hamlet.core import errors as core_errors
from hamlet.core.auth_rules import validate_power_levels_content
from hamlet.core.canonical_json import encode_canonical_json
from hamlet.core.events import Event
from hamlet.core.ids import RoomAlias, UserID
from hamlet.core.power_levels import get_room_creators
from hamlet.core.presets import (
    default_power_levels_content,
    get_preset,
    preset_for_visibility,
    preset_initial_state,
)
from hamlet.core.room_versions import KNOWN_ROOM_VERSIONS
from hamlet.handlers.appservice.registry import AppServices
from hamlet.handlers.common.errors import (
    BadJsonError,
    ForbiddenError,
    InvalidParamError,
    MatrixError,
    TooLargeError,
)
from hamlet.handlers.rooms.directory_rules import DirectoryRuleSets
from hamlet.handlers.rooms.event_creation import EventCreator
from hamlet.handlers.rooms.membership import MembershipHandler
from hamlet.storage.stores.rooms import RoomsStore

# Room for the rest of a PDU (ids, hashes, signature) under the 65536-byte limit.
MAX_CONTENT_BYTES = 60_000


def _opt_str(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise BadJsonError(f"{key} must be a string")
    return value


def _opt_dict(body: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadJsonError(f"{key} must be an object")
    return value


@dataclass(frozen=True, slots=True)
class RoomPlan:
    """A checked createRoom request: making the room can no longer fail on its input."""

    creator: str
    room_id: str
    version: str
    visibility: str
    preset: str
    name: str | None
    topic: str | None
    alias: str | None
    create_content: Mapping[str, Any]
    #: The create event `EventCreator.new_room` planned and its timestamp.
    planned_create: tuple[int, Event]
    power_levels: Mapping[str, Any]
    initial_state: tuple[Mapping[str, Any], ...]
    invites: tuple[str, ...]
    is_direct: bool


class RoomCreationHandler:
    def __init__(
        self,
        *,
        server_name: str,
        default_room_version: str,
        creator: EventCreator,
        membership: MembershipHandler,
        rooms: RoomsStore,
        rules: DirectoryRuleSets,
        app_services: AppServices | None = None,
    ) -> None:
        self.server_name = server_name
        self.rules = rules
        self.default_room_version = default_room_version
        self.creator = creator
        self.membership = membership
        self.rooms = rooms
        self.app_services = app_services or AppServices((), server_name)

    async def plan(
        self, user_id: str, body: Mapping[str, Any], app_service_id: str | None = None
    ) -> RoomPlan:
        """Check a createRoom body; everything that could refuse it is refused here."""
        version = body.get("room_version", self.default_room_version)
        if not isinstance(version, str) or version not in KNOWN_ROOM_VERSIONS:
            raise MatrixError(
                400, "M_UNSUPPORTED_ROOM_VERSION", f"Room version {version!r} is not supported"
            )
        visibility = body.get("visibility", "private")
        if visibility not in ("public", "private"):
            raise BadJsonError("visibility must be 'public' or 'private'")
        preset_name = body.get("preset") or preset_for_visibility(visibility)
        try:
            get_preset(preset_name) if isinstance(preset_name, str) else None
        except core_errors.EventFormatError:
            raise BadJsonError(f"Unknown preset {preset_name!r}") from None
        if not isinstance(preset_name, str):
            raise BadJsonError("preset must be a string")
        name = _opt_str(body, "name")
        topic = _opt_str(body, "topic")
        alias_name = _opt_str(body, "room_alias_name")
        creation_content = _opt_dict(body, "creation_content")
        pl_override = _opt_dict(body, "power_level_content_override")
        invites = body.get("invite", [])
        if not isinstance(invites, list) or not all(
            isinstance(u, str) and UserID.is_valid(u) for u in invites
        ):
            raise InvalidParamError("invite must be a list of user IDs")
        is_direct = body.get("is_direct", False)
        if not isinstance(is_direct, bool):
            raise BadJsonError("is_direct must be a boolean")
        initial_state = body.get("initial_state", [])
        if not isinstance(initial_state, list):
            raise BadJsonError("initial_state must be a list")
        for entry in initial_state:
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("type"), str)
                or not isinstance(entry.get("state_key", ""), str)
                or not isinstance(entry.get("content"), dict)
            ):
                raise BadJsonError("initial_state entries need type, state_key and content")
            if "\x00" in entry["type"] + entry.get("state_key", ""):
                raise BadJsonError("initial_state type and state_key may not contain NUL")

        for entry in initial_state:
            if entry["type"] == "m.room.create":
                raise BadJsonError("initial_state cannot contain m.room.create")
        # Everything the auth rules would refuse half-way through is refused
        # here, before the room exists (no half-made rooms).
        room_version = KNOWN_ROOM_VERSIONS[version]
        create_content = dict(creation_content)
        if not room_version.creator_from_sender:
            create_content["creator"] = user_id
        create_content["room_version"] = version
        if room_version.room_id_from_create_event and preset_name == "trusted_private_chat":
            # As Synapse: a trusted private chat's invitees are its creators too.
            extra = create_content.get("additional_creators", [])
            if isinstance(extra, list):
                create_content["additional_creators"] = list(dict.fromkeys([*extra, *invites]))
        pl_content = default_power_levels_content(
            user_id,
            preset_name,
            invites,
            pl_override,
            creators_outrank=room_version.room_id_from_create_event,
        )
        planned_create = await self.creator.new_room(user_id, room_version, create_content)
        create = planned_create[1]
        room_id = create.room_id
        creators = (
            get_room_creators(create) if room_version.room_id_from_create_event else frozenset()
        )
        for content in [pl_content] + [
            e["content"] for e in initial_state if e["type"] == "m.room.power_levels"
        ]:
            try:
                validate_power_levels_content(room_version, content)
            except core_errors.EventAuthError as e:
                raise BadJsonError(f"Invalid power levels: {e}") from None
            users = content.get("users")
            if isinstance(users, dict) and any(u in creators for u in users):
                raise BadJsonError("Invalid power levels: room creators cannot be given a level")

        contents: list[Mapping[str, Any]] = [create_content, pl_content]
        contents += [e["content"] for e in initial_state]
        contents += [{"name": name}] if name is not None else []
        contents += [{"topic": topic}] if topic is not None else []
        for content in contents:
            try:
                size = len(encode_canonical_json(content))
            except core_errors.EventFormatError as e:
                raise BadJsonError(str(e)) from None
            if size > MAX_CONTENT_BYTES:
                raise TooLargeError("An initial event of the room would be too large")

        alias: str | None = None
        if alias_name is not None:
            alias = f"#{alias_name}:{self.server_name}"
            if (
                ":" in alias_name
                or not alias_name
                or any(c.isspace() for c in alias_name)
                or not RoomAlias.is_valid(alias)
            ):
                raise InvalidParamError("Invalid room_alias_name")
            self.app_services.check_alias_available(
                alias, self.app_services.by_id(app_service_id or "")
            )
            if await self.rooms.get_alias(alias) is not None:
                raise MatrixError(400, "M_ROOM_IN_USE", "Room alias already taken")
        if alias is not None and not self.rules.aliases.allows(user_id, room_id, [alias]):
            raise ForbiddenError("Not allowed to create alias")

        return RoomPlan(
            creator=user_id,
            room_id=room_id,
            version=version,
            visibility=visibility,
            preset=preset_name,
            name=name,
            topic=topic,
            alias=alias,
            create_content=create_content,
            planned_create=planned_create,
            power_levels=pl_content,
            initial_state=tuple(initial_state),
            invites=tuple(dict.fromkeys(u for u in invites if u != user_id)),
            is_direct=is_direct,
        )

    async def create(self, plan: RoomPlan) -> dict[str, Any]:
        """Make the planned room: its initial events, in Synapse's order."""
        user_id, version, alias = plan.creator, plan.version, plan.alias
        send = self.creator.send
        created = await self.creator.send_create(
            user_id, KNOWN_ROOM_VERSIONS[version], plan.create_content, plan.planned_create
        )
        room_id = created.room_id
        await self.membership.update_membership(user_id, room_id, user_id, "join")

        await send(user_id, room_id, "m.room.power_levels", plan.power_levels, state_key="")

        if alias is not None:
            if not await self.rooms.create_alias(alias, room_id, user_id):
                raise MatrixError(400, "M_ROOM_IN_USE", "Room alias already taken")
            await send(user_id, room_id, "m.room.canonical_alias", {"alias": alias}, state_key="")

        given = {(e["type"], e.get("state_key", "")) for e in plan.initial_state}
        for event_type, state_key, content in preset_initial_state(plan.preset):
            if (event_type, state_key) not in given:
                await send(user_id, room_id, event_type, content, state_key=state_key)
        for entry in plan.initial_state:
            await send(
                user_id,
                room_id,
                entry["type"],
                entry["content"],
                state_key=entry.get("state_key", ""),
            )
        if plan.name is not None:
            await send(user_id, room_id, "m.room.name", {"name": plan.name}, state_key="")
        if plan.topic is not None:
            await send(user_id, room_id, "m.room.topic", {"topic": plan.topic}, state_key="")
        extra = {"is_direct": True} if plan.is_direct else None
        for invitee in plan.invites:
            await self.membership.update_membership(
                user_id, room_id, invitee, "invite", extra=extra
            )
        aliases = [alias] if alias is not None else []
        if plan.visibility == "public" and self.rules.publication.allows(user_id, room_id, aliases):
            # Refused by the rules, the room is still made, only not
            # published (Synapse since 1.101).
            await self.rooms.set_room_public(room_id, True)
        result: dict[str, Any] = {"room_id": room_id}
        if alias is not None:
            result["room_alias"] = alias
        return result
