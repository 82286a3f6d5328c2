"""Parsing shared by importers: timestamps and the status and link vocabularies."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd

from slipcast.core.contracts import EARLIEST, LATEST, MAX_STORY_POINTS, YEARS
from slipcast.core.errors import FieldError
from slipcast.core.vocabulary import TicketStatus


def parse_time(value, *, tz: str | None = None, formats: tuple[str, ...] = ()) -> pd.Timestamp | None:
    """An aware UTC timestamp from ISO-8601 (or one of ``formats``), None for empty values.

    A timestamp without an offset is refused unless ``tz`` says what zone it is in; a bare
    date is taken as midnight UTC.
    """
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    if not text:
        return None
    parsed = None
    for fmt in formats:
        try:
            parsed = datetime.strptime(text, fmt)
            break
        except ValueError:
            continue
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise FieldError((), f"unreadable timestamp {text!r}") from exc
    if isinstance(parsed, date) and not isinstance(parsed, datetime):  # pragma: no cover
        parsed = datetime(parsed.year, parsed.month, parsed.day)
    if parsed.tzinfo is None:
        if len(text) == 10:  # a calendar date
            parsed = parsed.replace(tzinfo=UTC)
        elif tz:
            return _bounded(pd.Timestamp(parsed).tz_localize(tz).tz_convert("UTC"), text)
        else:
            raise FieldError((), f"naive timestamp {text!r} (no UTC offset; give the time zone)")
    return _bounded(pd.Timestamp(parsed).tz_convert("UTC"), text)


def _bounded(ts: pd.Timestamp, text: str) -> pd.Timestamp:
    if not EARLIEST <= ts < LATEST:
        raise FieldError((), f"timestamp {text!r} outside {YEARS}")
    return ts


def parse_points(value) -> float | None:
    """Story points as a number from 0 to 10,000; None for empty values (and NaN)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise FieldError((), f"story points {value!r} is not a number")
    try:
        points = float(value)
    except ValueError:
        raise FieldError((), f"story points {value!r} is not a number") from None
    if points != points:  # NaN: what a spreadsheet writes for an empty number
        return None
    if not 0 <= points <= MAX_STORY_POINTS:
        raise FieldError((), f"story points {value!r} outside 0-{MAX_STORY_POINTS:,.0f}")
    return points


def link_kind_from_words(*descriptions: str | None) -> str | None:
    """A canonical link kind from a link type's own descriptions ("blocks", "is cloned by"), or None."""
    text = " ".join(d.lower() for d in descriptions if d)
    return next((kind for word, kind in LINK_WORDS if word in text), None)


def end_of_day(ts: pd.Timestamp | None) -> pd.Timestamp | None:
    """The end of a calendar date given as its midnight: due 'on' a date means by its end."""
    return None if ts is None else ts + timedelta(days=1) - timedelta(microseconds=1)


# what Jira says of a status itself (fields.status.statusCategory.key), in canonical terms
JIRA_STATUS_CATEGORIES = {"new": "todo", "indeterminate": "in_progress", "done": "done"}
# what Azure DevOps says of a state itself (its work-item type's state category), in canonical terms;
# a Removed item is no work at all: the import leaves it out, counted (docs/architecture.md, "Any tracker")
ADO_STATE_CATEGORIES = {"Proposed": "todo", "InProgress": "in_progress", "Resolved": "done", "Completed": "done"}
ADO_REMOVED = "Removed"
# Azure DevOps relation types (``relations[].rel``) in canonical link kinds, and whether the other item
# is the link's first end, seen from the item holding the relation: a Dependency-Forward names its
# successor (which depends on it), a Hierarchy-Reverse its parent, a Duplicate-Forward its duplicate;
# a Related link has no direction (its ends are ordered by id)
ADO_RELATIONS: dict[str, tuple[str, bool | None]] = {
    "System.LinkTypes.Dependency-Forward": ("depends_on", True),
    "System.LinkTypes.Dependency-Reverse": ("depends_on", False),
    "System.LinkTypes.Hierarchy-Forward": ("parent", False),
    "System.LinkTypes.Hierarchy-Reverse": ("parent", True),
    "System.LinkTypes.Duplicate-Forward": ("duplicates", True),
    "System.LinkTypes.Duplicate-Reverse": ("duplicates", False),
    "System.LinkTypes.Related": ("relates", None)}
# what Linear says of a workflow state itself (its ``type``), in canonical terms: a canceled issue
# (canceled, or a duplicate) is done, its state's name kept as its resolution
LINEAR_STATE_TYPES = {"triage": "todo", "backlog": "todo", "unstarted": "todo", "started": "in_progress",
                      "completed": "done", "canceled": "done"}
CANCELED_TYPE = "canceled"
# Linear's priorities (0 is "No priority": none)
LINEAR_PRIORITIES = {1: "Urgent", 2: "High", 3: "Medium", 4: "Low"}
# words of a link type's name or its outward or inward description, in canonical link kinds (first match
# wins). Gantt apps' links (BigPicture's "Gantt: finish-start", "has to be done before" / "has to be done
# after"; WBS Gantt's "Finish-to-Finish") say one task ends before another may start or end: the outward
# issue, done first, blocks the inward one. A link that ties only starts (start-start, start-finish:
# "has to be started together with", "earliest end is start of") does not hold back a completion, stays
# relates, and comes first, so that no finish word of its name or descriptions catches it.
GANTT_STARTS = ("start-start", "start-finish", "start-to-start", "start-to-finish", "start to start",
                "start to finish", "start to end", "started together", "earliest end")
GANTT_FINISHES = ("finish-start", "finish-finish", "finish-to-start", "finish-to-finish", "end to start",
                  "end to end", "finished together", "done before")
LINK_WORDS = (tuple((word, "relates") for word in GANTT_STARTS)
              + (("block", "blocks"), ("depend", "depends_on"), ("require", "depends_on"), ("duplicat", "duplicates"))
              + tuple((word, "blocks") for word in GANTT_FINISHES)
              # only "done after" said: the outward issue is the one done later, so it depends on the other
              + (("done after", "depends_on"),)
              + (("clone", "relates"), ("incorporat", "parent"), ("contain", "parent"), ("parent", "parent"),
                 ("sub-task", "parent"), ("subtask", "parent"), ("child", "parent"), ("relat", "relates")))


# where Jira itself puts a status it was told nothing of: a new custom status is "In Progress"
UNPLACED_STATUS = TicketStatus.IN_PROGRESS.value


class Vocabulary:
    """Maps tracker names (case-insensitive) onto canonical categories: the settings profile
    first (it overrides), then what the tracker said of a name itself (``learn``), then
    ``default`` where one is given (a name nothing places, remembered in ``defaulted`` and warned
    of once), else a rejection that names it."""

    def __init__(self, what: str, categories: dict[str, list[str]], default: str | None = None):
        self.what = what
        self.default = default
        self._lookup = {name.strip().lower(): cat for cat, names in categories.items() for name in names}
        self._lookup.update({cat: cat for cat in categories})
        self._learned: dict[str, str] = {}
        self.used: dict[str, str] = {}  # each tracker name met, as spelled first, and where it went
        self.defaulted: set[str] = set()  # names placed by the default: no list and nothing the tracker said

    def note(self, name, category: str) -> str:
        """Record that ``name`` was placed as ``category`` (for the import summary)."""
        self.used.setdefault(str(name), category)
        return category

    @staticmethod
    def _key(name) -> str:
        return str(name).strip().lower() if name is not None else ""

    def warnings(self) -> list[str]:
        """One line per name the default placed, for the import summary."""
        return [f"{self.what} {name!r}: no list and nothing the tracker said places it; read as {self.default} "
                f"(Jira's own category for a custom status; map it under imports.{self.what}_categories)"
                for name in sorted(self.defaulted)]

    def learn(self, name, category: str) -> None:
        """What the tracker says ``name`` means (a status's own category); the profile still wins."""
        self._learned.setdefault(self._key(name), category)

    def knows(self, name) -> bool:
        key = self._key(name)
        return key in self._lookup or key in self._learned

    def __call__(self, name) -> str:
        key = self._key(name)
        if key in self._lookup or key in self._learned:
            return self.note(name, self._lookup[key] if key in self._lookup else self._learned[key])
        if self.default is not None and key:
            self.defaulted.add(str(name))
            return self.note(name, self.default)
        where = f"imports.{self.what}_categories in the settings profile" if self.what == "status" else "imports.link_kinds"
        raise FieldError((), f"unknown {self.what} {name!r} (map it under {where})")


class LinkKinds(Vocabulary):
    """Link types onto canonical kinds: the profile's name for the type, else for its outward or
    inward description, else what those words say; a type nothing places is kept as ``relates``
    and remembered in ``unplaced`` (the import warns once per type)."""

    def __init__(self, categories: dict[str, list[str]]):
        super().__init__("link", categories)
        self.unplaced: dict[str, str | None] = {}  # type name -> its outward description

    def place(self, name, outward: str | None = None, inward: str | None = None) -> str:
        for text in (name, outward, inward):
            if text is not None and self.knows(text):
                return self.note(name, self(text))
        kind = link_kind_from_words(outward, inward, name)
        if kind is None:
            kind = "relates"
            self.unplaced.setdefault(str(name), outward)
        return self.note(name, kind)

    def warnings(self) -> list[str]:
        return [f"link type {name!r} (outward {outward!r}) is like no known kind: kept as relates "
                "(map it under imports.link_kinds)" for name, outward in self.unplaced.items()]
