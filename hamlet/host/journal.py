"""Provisioning and removal that a crash at any step cannot leave half done.

The registry is the commit point of both; each tenant's data directory
carries the intent of the step in progress, so that startup can finish or
roll back whatever a kill -9 interrupted:

- add: the directory is created holding a `.provisioning` marker before
  anything else is written. The registry then lists the tenant, and only
  after that is the marker removed. A marked directory whose tenant the
  registry does not list is rolled back (its data purged); one it lists is
  kept (the marker was all that was left to do).
- remove: a `.removing` marker, saying whether to purge, is written before
  the registry forgets the tenant. A marked directory whose tenant the
  registry still lists is kept (the removal never committed); one it no
  longer lists is purged, or only unmarked when the data is to be kept.
- purge: the database goes first, then the directory is renamed (atomic)
  to a `.trash-` name and deleted. Leftover trash is deleted at startup.

A server name cannot start with a dot, so no tenant's directory is ever
taken for trash or a marker. The steps are ordered, not synced to disk:
they survive the process dying, not the machine losing power.
"""

from __future__ import annotations

import enum
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

PROVISIONING = ".provisioning"
REMOVING = ".removing"
TRASH_PREFIX = ".trash-"
_PURGE = "purge"


class Step(enum.Enum):
    ADD = PROVISIONING
    REMOVE = REMOVING


@dataclass(frozen=True, slots=True)
class Unfinished:
    """A tenant directory a step was interrupted in."""

    data_dir: Path
    step: Step
    purge: bool

    @property
    def server_name(self) -> str:
        return self.data_dir.name


def begin_add(data_dir: Path) -> None:
    """Create the tenant's directory, marked as being provisioned.

    FileExistsError if it exists: it belongs to someone else.
    """
    data_dir.mkdir(parents=True)
    try:
        (data_dir / PROVISIONING).touch()
    except BaseException:
        data_dir.rmdir()
        raise


def begin_remove(data_dir: Path, purge: bool) -> None:
    if data_dir.is_dir():
        (data_dir / REMOVING).write_text(_PURGE if purge else "keep")


def finish(data_dir: Path, step: Step) -> None:
    """The step is committed (or rolled back) and its data stays: drop its marker."""
    (data_dir / step.value).unlink(missing_ok=True)


def trash(data_dir: Path) -> None:
    """Delete a tenant's directory; a crash part way leaves trash, never a half directory."""
    if not data_dir.exists():
        return
    doomed = data_dir.with_name(f"{TRASH_PREFIX}{data_dir.name}-{secrets.token_hex(4)}")
    data_dir.rename(doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def unfinished(tenants_dir: Path) -> list[Unfinished]:
    """The tenant directories a step was interrupted in, by name."""
    if not tenants_dir.is_dir():
        return []
    found: list[Unfinished] = []
    for entry in sorted(tenants_dir.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        removing = entry / REMOVING
        if removing.exists():
            purge = removing.read_text().strip() == _PURGE
            found.append(Unfinished(entry, Step.REMOVE, purge))
        elif (entry / PROVISIONING).exists():
            found.append(Unfinished(entry, Step.ADD, True))
    return found


def empty_trash(tenants_dir: Path) -> int:
    """Delete what purges interrupted by a crash left; returns how many directories."""
    if not tenants_dir.is_dir():
        return 0
    leftovers = [p for p in tenants_dir.iterdir() if p.name.startswith(TRASH_PREFIX)]
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return len(leftovers)
