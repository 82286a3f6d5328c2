"""A factor's effect on a forecast in one sentence a program manager can repeat, with the
numbers (``scoring.explain``; docs/features.md, "Factors")."""

from __future__ import annotations

from collections.abc import Callable

from slipcast.core.vocabulary import Direction

LABELS = {"progress": "Progress", "scope_change": "Scope change", "time_and_pace": "Time left and pace needed",
          "capacity": "Team capacity", "dependencies": "Dependencies", "plan_changes": "Plan changes",
          "track_record": "Track record", "other": "Other signals"}


def _n(value) -> float | None:
    return None if value is None or isinstance(value, str) else float(value)


def _count(value) -> str:
    v = _n(value)
    return "?" if v is None else f"{v:,.0f}"


def _share(value) -> str:
    v = _n(value)
    return "?" if v is None else f"{100 * v:.0f} %"


def _progress(v: dict, t: dict) -> str:
    scope, left = _n(v.get("scope_count")), _n(v.get("remaining_count"))
    done = None if scope is None or left is None else scope - left
    return (f"{_count(done)} of {_count(scope)} tickets done ({_share(v.get('done_share'))}), {_count(left)} left; "
            f"a typical milestone has {_share(t.get('done_share'))} done")


def _scope_change(v: dict, t: dict) -> str:
    added, removed, scope = (_n(v.get(k)) for k in ("scope_added_since_start", "scope_removed_since_start",
                                                     "scope_count"))
    start = None if None in (added, removed, scope) else scope - added + removed  # type: ignore[operator]
    grew = f" (+{_share(added / start)})" if added and start else ""
    return (f"{_count(added)} tickets{grew} added and {_count(removed)} removed since the start; a typical "
            f"milestone adds {_count(t.get('scope_added_since_start'))}")


def _time_and_pace(v: dict, t: dict) -> str:
    pace = _n(v.get("required_vs_observed"))
    needs = f", {pace:.1f}x the team's recent pace" if pace is not None else ""
    weekly = _n(v.get("required_per_week"))
    return (f"{_count(v.get('days_left'))} of {_count(v.get('span_days'))} days left; what is left needs "
            f"{'?' if weekly is None else f'{weekly:.1f}'} tickets a week{needs}")


def _capacity(v: dict, t: dict) -> str:
    rate, usual = _n(v.get("throughput_per_week")), _n(t.get("throughput_per_week"))
    return (f"the team finishes {'?' if rate is None else f'{rate:.1f}'} tickets a week (a typical team "
            f"{'?' if usual is None else f'{usual:.1f}'}), {_count(v.get('team_size'))} people at work")


def _dependencies(v: dict, t: dict) -> str:
    cross, blocked = _n(v.get("open_cross_team_dependencies")), _n(v.get("blocked_count"))
    if not cross and not blocked:
        return "nothing waits on other work"
    return f"{_count(cross)} tickets wait on other teams' open work and {_count(blocked)} are blocked"


def _plan_changes(v: dict, t: dict) -> str:
    moves, shift = _n(v.get("due_replans")), _n(v.get("due_shift_days"))
    if not moves:
        return "the due date has not moved"
    return f"the due date moved {moves:.0f} times, {'?' if shift is None else f'{shift:+.0f}'} days in all"


def _track_record(v: dict, t: dict) -> str:
    return (f"{_share(v.get('past_slip_rate'))} of this team's {_count(v.get('past_milestones_known'))} finished "
            f"milestones slipped (a typical team {_share(t.get('past_slip_rate'))})")


WORDS: dict[str, Callable[[dict, dict], str]] = {
    "progress": _progress, "scope_change": _scope_change, "time_and_pace": _time_and_pace, "capacity": _capacity,
    "dependencies": _dependencies, "plan_changes": _plan_changes, "track_record": _track_record}


def sentence(factor: str, values: dict, typical: dict, effect: float) -> str:
    """``factor`` in words: what the milestone's values say beside the typical milestone's, and
    how much that moves its chance of slipping."""
    said = WORDS.get(factor, lambda v, t: "signals the catalogue does not name")(values, typical)
    return f"{LABELS.get(factor, factor)}: {said} ({100 * effect:+.0f} points, {_way(effect)})."


def remainder_sentence(remainder: float) -> str:
    """What the factors taken one at a time leave unexplained, where it is large."""
    return (f"The factors together move the forecast {100 * remainder:+.0f} points more than one at a time "
            "(they interact).")


def _way(effect: float) -> str:
    return (Direction.RAISES if effect >= 0 else Direction.LOWERS).value
