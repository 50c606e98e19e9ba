"""State resolution: the spec's "v2" algorithm (room versions 2 and later)
and room version 1's original one.

:func:`resolve_state` merges the states after several ``prev_events`` into
the state before a new event. It is pure: the caller hands it every event
it may need (the events of the state sets and their auth chains) and the
IDs of events that were rejected. Events it is not given are treated as
unknown and left out, as a server does with events it never obtained.

Room version 12 changes three things (``RoomVersion.state_res == "v2.1"``):
the first round of iterative auth checks starts from an empty state, and
the full conflicted set also takes in the *conflicted state subgraph*.

Room version 1 (``"v1"``) resolves power levels, then join rules, then
memberships, each by walking its conflicting events from the shallowest
and keeping the last one allowed, and every other conflict by the deepest
event allowed, as the v1 room spec describes and Synapse does (a key that
only some states have is not a conflict there).
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Final

from hamlet.core.auth_rules import auth_check, auth_types_for_event
from hamlet.core.errors import CoreError, UnsupportedRoomVersionError
from hamlet.core.events import Event
from hamlet.core.power_levels import (
    CREATE_KEY,
    POWER_LEVELS_KEY,
    AuthState,
    StateKey,
    get_user_power_level,
)
from hamlet.core.room_versions import RoomVersion

StateMap = Mapping[StateKey, str]
#: (negated power or mainline position, origin_server_ts, event_id): smallest first.
SortKey = tuple[int, int, str]

_MEMBER: Final = "m.room.member"


def resolve_state(
    room_version: RoomVersion,
    state_sets: Sequence[StateMap],
    events: Mapping[str, Event],
    rejected: Collection[str] = frozenset(),
    auth_difference: Collection[str] | None = None,
) -> dict[StateKey, str]:
    """The resolution of ``state_sets`` (each ``(type, state_key) -> event_id``).

    ``auth_difference`` may be given when the caller computed it (from
    stored auth chains); ``events`` then needs only the state sets' events
    and the auth chains of the conflicted and power levels events, not the
    auth chains of the whole states.

    Raises :class:`UnsupportedRoomVersionError` for an algorithm this does not know.
    """
    if not state_sets:
        return {}
    if len(state_sets) == 1:
        return dict(state_sets[0])
    if room_version.state_res == "v1":
        return _resolve_v1(room_version, state_sets, events)
    if room_version.state_res not in ("v2", "v2.1"):
        raise UnsupportedRoomVersionError(
            f"state resolution {room_version.state_res!r} is not implemented"
        )
    resolver = _Resolver(room_version, events, rejected)
    return resolver.resolve(state_sets, auth_difference)


def is_power_event(event: Event) -> bool:
    """An event that may take away someone's ability to act in the room."""
    if event.state_key is None:
        return False
    if event.type in ("m.room.power_levels", "m.room.join_rules") and event.state_key == "":
        return True
    if event.type == _MEMBER:
        membership = event.content.get("membership")
        return membership in ("leave", "ban") and event.sender != event.state_key
    return False


class _Resolver:
    """One resolution: memoised auth chains over the events it was given."""

    def __init__(
        self,
        room_version: RoomVersion,
        events: Mapping[str, Event],
        rejected: Collection[str],
    ) -> None:
        self._version = room_version
        self._events = events
        self._rejected = rejected
        self._chains: dict[str, frozenset[str]] = {}

    def resolve(
        self, state_sets: Sequence[StateMap], auth_difference: Collection[str] | None = None
    ) -> dict[StateKey, str]:
        unconflicted, conflicted = partition_state(state_sets)
        if auth_difference is None:
            auth_difference = self._auth_difference(state_sets)
        full = set(conflicted) | set(auth_difference)
        if self._version.state_res == "v2.1":
            full |= self._conflicted_subgraph(conflicted)
        full = {eid for eid in full if eid in self._events}

        power = [eid for eid in full if is_power_event(self._events[eid])]
        ordered_power = self._reverse_topological_power_order(power, full)
        initial: dict[StateKey, str] = (
            {} if self._version.state_res == "v2.1" else dict(unconflicted)
        )
        partial = self._iterative_auth_checks(initial, ordered_power)

        rest = sorted(full - set(ordered_power))
        ordered_rest = self._mainline_order(rest, partial.get(POWER_LEVELS_KEY))
        resolved = self._iterative_auth_checks(partial, ordered_rest)
        resolved.update(unconflicted)
        return resolved

    # --- auth chains ---

    def _auth_events_of(self, event_id: str) -> list[str]:
        event = self._events.get(event_id)
        return event.auth_events if event is not None else []

    def auth_chain(self, event_id: str) -> frozenset[str]:
        """Every event reachable through ``auth_events``, without ``event_id`` itself.

        Iterative post-order walk so a long chain cannot exhaust the stack.
        """
        done = self._chains.get(event_id)
        if done is not None:
            return done
        stack: list[tuple[str, bool]] = [(event_id, False)]
        while stack:
            current, expanded = stack.pop()
            if current in self._chains:
                continue
            parents = [p for p in self._auth_events_of(current) if p in self._events]
            if not expanded:
                stack.append((current, True))
                stack.extend((p, False) for p in parents if p not in self._chains)
                continue
            chain: set[str] = set(parents)
            for parent in parents:
                chain |= self._chains.get(parent, frozenset())
            self._chains[current] = frozenset(chain)
        return self._chains[event_id]

    def _auth_difference(self, state_sets: Sequence[StateMap]) -> set[str]:
        chains: list[set[str]] = []
        for state in state_sets:
            chain: set[str] = set()
            for event_id in state.values():
                chain |= self.auth_chain(event_id)
            chains.append(chain)
        union: set[str] = set().union(*chains)
        common = chains[0].intersection(*chains[1:])
        return union - common

    def _conflicted_subgraph(self, conflicted: set[str]) -> set[str]:
        """Events on an ``auth_events`` path from one conflicted event to another."""
        below: set[str] = set()
        for event_id in conflicted:
            below |= self.auth_chain(event_id)
        # An event is on such a path when it lies below a conflicted event and
        # a conflicted event lies at or below it.
        return {eid for eid in below if eid in conflicted or (self.auth_chain(eid) & conflicted)}

    # --- orderings ---

    def _sender_power(self, event: Event) -> int:
        return get_user_power_level(event.sender, self._auth_state_from_auth_events(event))

    def _auth_state_from_auth_events(self, event: Event) -> dict[StateKey, Event]:
        state: dict[StateKey, Event] = {}
        if self._version.room_id_from_create_event:
            # From v12 no event lists the create event: the room ID names it.
            create = self._events.get("$" + event.room_id[1:])
            if create is not None and create.type == "m.room.create":
                state[CREATE_KEY] = create
        for auth_id in event.auth_events:
            auth_event = self._events.get(auth_id)
            if auth_event is None or auth_id in self._rejected:
                continue
            if auth_event.state_key is not None:
                state[(auth_event.type, auth_event.state_key)] = auth_event
        return state

    def _reverse_topological_power_order(self, power: list[str], full: set[str]) -> list[str]:
        """Kahn's algorithm over the auth DAG, smallest candidate first.

        The graph takes in the power events and whatever is reachable from
        them through ``auth_events`` without leaving the full conflicted set.
        """
        graph: dict[str, set[str]] = {}
        stack = list(power)
        while stack:
            event_id = stack.pop()
            if event_id in graph:
                continue
            parents = {p for p in self._auth_events_of(event_id) if p in full}
            graph[event_id] = parents
            stack.extend(p for p in parents if p not in graph)
        return self._kahn(graph, self._power_sort_key)

    def _power_sort_key(self, event_id: str) -> SortKey:
        event = self._events[event_id]
        return (-self._sender_power(event), event.origin_server_ts, event_id)

    @staticmethod
    def _kahn(graph: Mapping[str, set[str]], key: Callable[[str], SortKey]) -> list[str]:
        waiting = {node: len(parents) for node, parents in graph.items()}
        children: dict[str, list[str]] = {node: [] for node in graph}
        for node, parents in graph.items():
            for parent in parents:
                children[parent].append(node)
        heap = [(key(node), node) for node, count in waiting.items() if count == 0]
        heapq.heapify(heap)
        ordered: list[str] = []
        while heap:
            _, node = heapq.heappop(heap)
            ordered.append(node)
            for child in children[node]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    heapq.heappush(heap, (key(child), child))
        return ordered

    def _power_levels_parent(self, event: Event) -> Event | None:
        for auth_id in event.auth_events:
            auth_event = self._events.get(auth_id)
            if auth_event is not None and (auth_event.type, auth_event.state_key) == (
                POWER_LEVELS_KEY
            ):
                return auth_event
        return None

    def _mainline_order(self, event_ids: list[str], power_levels_id: str | None) -> list[str]:
        mainline: dict[str, int] = {}
        current = self._events.get(power_levels_id) if power_levels_id else None
        index = 0
        while current is not None and current.event_id not in mainline:
            mainline[current.event_id] = index
            index += 1
            current = self._power_levels_parent(current)
        unreachable = index  # greater than every real position: sorts first

        def position(event: Event) -> int:
            seen: set[str] = set()
            step = self._power_levels_parent(event)
            while step is not None and step.event_id not in seen:
                found = mainline.get(step.event_id)
                if found is not None:
                    return found
                seen.add(step.event_id)
                step = self._power_levels_parent(step)
            return unreachable

        def sort_key(event_id: str) -> SortKey:
            event = self._events[event_id]
            return (-position(event), event.origin_server_ts, event_id)

        return sorted(event_ids, key=sort_key)

    # --- iterative auth checks ---

    def _iterative_auth_checks(
        self, initial: Mapping[StateKey, str], ordered: Iterable[str]
    ) -> dict[StateKey, str]:
        state = dict(initial)
        for event_id in ordered:
            event = self._events[event_id]
            if event.state_key is None:
                continue
            auth_state = self._auth_state_from_auth_events(event)
            for key in auth_types_for_event(
                self._version, event.type, event.state_key, event.sender, event.content
            ):
                chosen = state.get(key)
                if chosen is not None and chosen in self._events:
                    auth_state[key] = self._events[chosen]
            if self._allowed(event, auth_state):
                state[(event.type, event.state_key)] = event_id
        return state

    def _allowed(self, event: Event, auth_state: AuthState) -> bool:
        return _allowed(self._version, event, auth_state)


def partition_state(
    state_sets: Sequence[StateMap],
) -> tuple[dict[StateKey, str], set[str]]:
    """The unconflicted state map and the conflicted state set."""
    keys: set[StateKey] = set()
    for state in state_sets:
        keys.update(state)
    unconflicted: dict[StateKey, str] = {}
    conflicted: set[str] = set()
    for key in keys:
        present = {state[key] for state in state_sets if key in state}
        if len(present) == 1 and all(key in state for state in state_sets):
            unconflicted[key] = present.pop()
        else:
            conflicted |= present
    return unconflicted, conflicted


# --- room version 1 ---


def _v1_order(event: Event) -> tuple[int, str]:
    """Deepest first, then the smallest SHA-1 of the event ID (the spec's order)."""
    return -event.depth, hashlib.sha1(event.event_id.encode()).hexdigest()


def _resolve_v1(
    room_version: RoomVersion, state_sets: Sequence[StateMap], events: Mapping[str, Event]
) -> dict[StateKey, str]:
    resolved: dict[StateKey, str] = dict(state_sets[0])
    conflicted: dict[StateKey, set[str]] = {}
    for state in state_sets[1:]:
        for key, event_id in state.items():
            if key in conflicted:
                conflicted[key].add(event_id)
            elif resolved.get(key, event_id) == event_id:
                resolved[key] = event_id
            else:
                conflicted[key] = {event_id, resolved.pop(key)}
    # The auth state conflicts are judged in: the unconflicted state.
    auth_state: dict[StateKey, Event] = {
        key: events[eid] for key, eid in resolved.items() if eid in events
    }
    contenders: dict[StateKey, list[Event]] = {}
    for key, ids in conflicted.items():
        known = [events[eid] for eid in ids if eid in events]
        if len(known) == 1:
            resolved[key] = known[0].event_id
            auth_state[key] = known[0]
        elif known:
            contenders[key] = sorted(known, key=_v1_order)

    def stage(keys: Iterable[StateKey], pick: Callable[[list[Event]], Event]) -> None:
        chosen = {key: pick(contenders[key]) for key in keys}
        for key, event in chosen.items():
            resolved[key] = event.event_id
        auth_state.update(chosen)

    def auth_ordered(candidates: list[Event]) -> Event:
        """From the shallowest, each next event must be allowed with the one before it."""
        walk = list(reversed(candidates))
        wanted: set[StateKey] = set()
        for event in walk:
            wanted |= auth_types_for_event(
                room_version, event.type, event.state_key, event.sender, event.content
            )
        state = {key: auth_state[key] for key in wanted if key in auth_state}
        previous = walk[0]
        for event in walk[1:]:
            state[(previous.type, previous.state_key or "")] = previous
            if not _allowed(room_version, event, state):
                return previous
            previous = event
        return previous

    def first_allowed(candidates: list[Event]) -> Event:
        for event in candidates:
            if _allowed(room_version, event, auth_state):
                return event
        return candidates[-1]

    stage([k for k in contenders if k == POWER_LEVELS_KEY], auth_ordered)
    stage([k for k in contenders if k[0] == "m.room.join_rules"], auth_ordered)
    stage([k for k in contenders if k[0] == _MEMBER], auth_ordered)
    stage([k for k in contenders if k not in auth_state], first_allowed)
    return resolved


def _allowed(room_version: RoomVersion, event: Event, auth_state: AuthState) -> bool:
    try:
        auth_check(room_version, event, auth_state)
    except CoreError:
        return False
    return True
