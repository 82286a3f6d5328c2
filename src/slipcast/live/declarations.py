"""Programs and dependencies declared through the API (``PUT /v1/programs/{id}``,
``PUT /v1/dependencies``), kept beside the settings' own declarations.

They live in one JSON file, ``<work_dir>/declarations.json``, replaced whole at each change (written
beside it, flushed, renamed over it: a reader sees the old declarations or the new, never part of
either) under a lock, so that the workers of a machine change it one at a time and all read it.
Not in the ledger: the ledger records forecasts, is optional (``serving.ledger_url`` may be null)
and fails soft (a service serves on while it cannot be written), whereas a declaration is
configuration that must be kept whether or not forecasts can be recorded, and read by the child
process that builds the live state, which opens no database. Every worker's refresh reads the
file (it is small) and rebuilds when it changed, as when the store changes (``live.state``); the
state's version holds its fingerprint, so ETags change with it (docs/architecture.md, "Programs
in the API"). Several machines share declarations where they share ``work_dir``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from slipcast.core.settings import DependencyDeclaration, ProgramDeclaration, Settings

FILE = "declarations.json"


class DeclarationsError(RuntimeError):
    """The declarations file cannot be read or written; the message names it and says why."""


class Declarations(BaseModel):
    """What the API declared: programs (by id, the latest declaration of each) and dependencies."""

    programs: list[ProgramDeclaration] = Field(default_factory=list)
    dependencies: list[DependencyDeclaration] = Field(default_factory=list)

    def fingerprint(self) -> str:
        """A short hash of the declarations (the live state's version holds it)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]

    def program(self, program_id: str) -> ProgramDeclaration | None:
        return next((p for p in self.programs if p.program_id == program_id), None)

    def with_program(self, declared: ProgramDeclaration) -> Declarations:
        """These declarations with ``declared`` added, or in place of the one of its id."""
        others = [p for p in self.programs if p.program_id != declared.program_id]
        return self.model_copy(update={"programs": sorted([*others, declared], key=lambda p: p.program_id)})

    def without_program(self, program_id: str) -> Declarations:
        return self.model_copy(update={"programs": [p for p in self.programs if p.program_id != program_id]})


def declarations_path(settings: Settings) -> Path:
    return settings.resolve(settings.work_dir) / FILE


def read_declarations(settings: Settings) -> Declarations:
    """The API's declarations (none where the file does not exist yet)."""
    path = declarations_path(settings)
    try:
        return Declarations.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return Declarations()
    except (OSError, ValidationError, ValueError) as exc:
        raise DeclarationsError(f"declarations {path}: cannot read them: {_first_line(exc)}") from exc


def change_declarations(settings: Settings, change: Callable[[Declarations], Declarations]) -> Declarations:
    """Apply ``change`` to the declarations and write the result, one worker at a time; returns it."""
    path = declarations_path(settings)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            changed = change(read_declarations(settings))
            _replace(path, changed.model_dump_json(indent=1).encode())
    except OSError as exc:
        raise DeclarationsError(f"declarations {path}: cannot write them: {_first_line(exc)}") from exc
    return changed


def _replace(path: Path, data: bytes) -> None:
    """``path`` replaced whole by ``data``: written to a new file beside it, flushed to disk, then
    renamed over it."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _first_line(exc: BaseException) -> str:
    said = str(exc).strip()
    return said.splitlines()[0] if said else type(exc).__name__
