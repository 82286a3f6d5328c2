"""A simulator of teams working through milestones: the embedded default history.

Slips are never planted. Each team has its own capacity, weekly noise, holidays and
vacations, estimation error and planning optimism; scope arrives mid-milestone (urgent bugs),
finished work reopens, tickets wait on other teams' tickets, managers move due dates or
descope when behind, and whatever is unfinished at the due date moves to the next milestone.
Whether a milestone slips follows from those mechanics alone. Same seed, same history.

Projects are simulated in order, so a ticket may depend on a ticket of an earlier project whose
completion time is already known; that is how cross-team blocking enters. Two things tie teams'
milestones together: part of each week's capacity noise is a shock all teams meet in that calendar
week (``shared_shock``), and programs (``simulated_programs.py``) join milestones of several teams,
later teams' tickets waiting on earlier teams' tickets, shown as epics with their children.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache

import numpy as np
import pandas as pd

from slipcast.core.progress import progress
from slipcast.core.vocabulary import TicketStatus
from slipcast.ingest.simulated_programs import WORK_AROUND_DAYS, Programs
from slipcast.ingest.tables import Tables, last_values, make_tables

EPOCH = pd.Timestamp("2022-01-03", tz="UTC")  # a Monday
UPSTREAM_TEAMS = 3  # a team may wait on tickets of the three teams simulated before it
MAX_DAYS = 25 * 365  # a team still going after 25 years stops there
TYPES = (("Story", 0.55), ("Bug", 0.30), ("Task", 0.15))
PRIORITIES = (("High", 0.15), ("Medium", 0.60), ("Low", 0.25))
PRIORITY_RANK = {"High": 0, "Medium": 1, "Low": 2}
POINTS = ((1, 0.15), (2, 0.25), (3, 0.30), (5, 0.22), (8, 0.08))
SHOCK_WEEKS = 4  # a shared shock lasts about a month (see _week_shock)


@dataclass(frozen=True)
class SimulationConfig:
    """Size and seed of a simulated history."""

    projects: int = 6
    tickets: int = 6000
    seed: int = 1
    open_share: float = 0.08  # share of the timeline after the export cut (open milestones)
    # a planted change of behaviour, for testing the monitoring loop: from this day on, every
    # team stops work in the last ``freeze_days`` before each due date (a code freeze) and keeps
    # planning as before; early in a milestone the features cannot see it (the teams share one
    # random stream, so the history before that day is another draw of the same process)
    freeze_from_day: float | None = None
    freeze_days: int = 7
    # share of the variance of a team's weekly log capacity that is a shock every team meets in
    # that calendar week, a spell of a few weeks (0: teams vary independently, as before shocks were
    # shared; 1: all teams move together)
    shared_shock: float = 0.5
    # a program across teams starts every this many days (None: no programs); see simulated_programs.py
    program_every_days: int | None = 90
    program_teams: tuple[int, int] = (2, 4)  # fewest and most teams a program picks
    program_dependency_share: float = 0.3  # share of a later team's program tickets that wait on an earlier team's
    optimism: tuple[float, float] = (0.6, 1.3)  # a team commits this share of its expected capacity (drawn per team)
    capacity_sigma: float = 0.25  # sigma of a team's weekly log capacity (the week's shock and its own)

    def __post_init__(self):
        if not 0.0 <= self.shared_shock <= 1.0:
            raise ValueError(f"shared_shock {self.shared_shock} outside 0-1")
        if self.program_every_days is not None and self.program_every_days < 1:
            raise ValueError(f"program_every_days {self.program_every_days} is not a positive number of days")
        if not 2 <= self.program_teams[0] <= self.program_teams[1]:
            raise ValueError(f"program_teams {self.program_teams}: a program joins at least 2 teams, fewest first")
        if not 0.0 <= self.program_dependency_share <= 1.0:
            raise ValueError(f"program_dependency_share {self.program_dependency_share} outside 0-1")


@dataclass
class _Team:
    key: str
    members: int
    velocity: float  # points per member per working day
    optimism: float  # committed / expected capacity
    estimate_noise: float
    unplanned_per_week: float
    replan_p: float
    descope_p: float
    reopen_p: float
    span_days: int
    kind: str
    dependency_p: float


class _Recorder:
    """Columnar event log; times are float days since EPOCH."""

    def __init__(self):
        self.ticket: list = []
        self.milestone: list = []
        self.at: list[float] = []
        self.field: list[str] = []
        self.old: list = []
        self.new: list = []

    def add(self, at, field, old, new, ticket=None, milestone=None):
        self.ticket.append(ticket)
        self.milestone.append(milestone)
        self.at.append(at)
        self.field.append(field)
        self.old.append(old)
        self.new.append(new)


def _choice(rng: random.Random, table):
    x, acc = rng.random(), 0.0
    for value, p in table:
        acc += p
        if x < acc:
            return value
    return table[-1][0]


@cache
def _calendar(day: int) -> tuple[bool, bool]:
    """(working day, year-end holiday) of a simulation day."""
    d = date(2022, 1, 3) + timedelta(days=day)
    return d.weekday() < 5, (d.month == 12 and d.day >= 23) or (d.month == 1 and d.day <= 2)


@cache
def _week_news(seed: int, week: int) -> float:
    """What befalls every team in a calendar week: a standard normal from a generator of its own,
    seeded by the history's seed and the week, so the same whatever order the teams run in."""
    return random.Random(f"slipcast-week:{seed}:{week}").gauss(0.0, 1.0)


def _week_shock(seed: int, week: int) -> float:
    """The shock every team meets in a calendar week: the mean of the last ``SHOCK_WEEKS`` weeks'
    news, scaled to a standard normal. A bad spell (incidents, a reorganisation, a flu wave) lasts a
    few weeks, so the milestones of one period move together; a single week's shock is averaged
    away within a milestone and barely moves its outcome."""
    return sum(_week_news(seed, week - lag) for lag in range(SHOCK_WEEKS)) / math.sqrt(SHOCK_WEEKS)


def _capacity_factor(rng: random.Random, shared: tuple[int, float, float], week: int) -> float:
    """A team's capacity factor in a calendar week: lognormal with sigma ``shared[2]``, its log a
    share ``shared[1]`` of the variance from the week's shock (history seed ``shared[0]``), the rest
    the team's own (0 draws exactly what ``rng.lognormvariate(0, sigma)`` would). Each week alone
    has the same distribution whatever the share: it sets only how much teams and weeks move together."""
    seed, rho, sigma = shared
    own = rng.normalvariate(0.0, 1.0)
    return math.exp(sigma * (math.sqrt(rho) * _week_shock(seed, week) + math.sqrt(1.0 - rho) * own))


def _team(rng: random.Random, index: int, optimism: tuple[float, float]) -> _Team:
    kind = "sprint" if rng.random() < 0.5 else "release"
    return _Team(
        key=f"P{index:03d}",
        members=rng.randint(3, 8),
        velocity=rng.lognormvariate(np.log(0.55), 0.25),
        optimism=rng.uniform(*optimism),
        estimate_noise=rng.uniform(0.25, 0.7),
        unplanned_per_week=rng.uniform(0.0, 3.0),
        replan_p=rng.uniform(0.05, 0.6),
        descope_p=rng.uniform(0.1, 0.7),
        reopen_p=rng.uniform(0.02, 0.15),
        span_days=14 if kind == "sprint" else rng.choice((28, 42, 56)),
        kind=kind,
        dependency_p=rng.uniform(0.0, 0.15) if index else 0.0,
    )


def _simulate_project(rng: random.Random, team: _Team, budget: int,
                      rec: _Recorder, tickets: list[dict], milestones: list[dict],
                      done_index: dict, first_day: int, upstream: list[dict], shared: tuple[int, float, float],
                      programs: Programs | None, freeze: tuple[float, int] | None = None) -> None:
    """Run one team through successive milestones until its ticket budget is spent. ``shared``
    (seed, share) is the weeks' shared capacity shock; ``programs`` the programs the team may join
    at planning; ``freeze`` (from day, days) plants a code freeze before each due date from that day on."""
    week_factor: dict[int, float] = {}
    backlog: list[dict] = []  # open tickets in no milestone: carried over or descoped
    day = first_day
    seq = 0
    recent: list[float] = []  # points done per milestone day, for the planner's velocity
    created = 0
    upstream_times = [u["created_at"] for u in upstream]

    def new_ticket(at: float, unplanned: bool) -> dict:
        nonlocal created
        created += 1
        ttype = "Bug" if unplanned else _choice(rng, TYPES)
        prio = "High" if unplanned else _choice(rng, PRIORITIES)
        points = _choice(rng, POINTS)
        t = {
            "ticket_id": f"{team.key}-{created}",
            "project": team.key,
            "type": ttype,
            "priority": prio,
            "created_at": at,
            "story_points": float(points),
            "effort": points * rng.lognormvariate(0.0, team.estimate_noise),
            "status": TicketStatus.TODO,
            "assignee": None,
            "blocked_until": None,
            "milestone": None,
        }
        t["remaining"] = t["effort"]
        rec.add(at, "status", None, TicketStatus.TODO, ticket=t["ticket_id"])
        rec.add(at, "priority", None, prio, ticket=t["ticket_id"])
        rec.add(at, "story_points", None, repr(float(points)), ticket=t["ticket_id"])
        if upstream and rng.random() < team.dependency_p:
            lo, hi = bisect.bisect_left(upstream_times, at - 45), bisect.bisect_right(upstream_times, at + 45)
            if hi > lo:
                u = upstream[rng.randrange(lo, hi)]
                # a dependency that never finishes is worked around after a few weeks
                t["blocked_until"] = min(done_index.get(u["ticket_id"], np.inf), at + rng.uniform(*WORK_AROUND_DAYS))
                t["depends_on"], t["linked_at"] = u["ticket_id"], at
        tickets.append(t)
        return t

    def assign(t: dict, mid: str, at: float) -> None:
        if t["milestone"] is not None:
            rec.add(at, "milestone", t["milestone"], None, ticket=t["ticket_id"])
        t["milestone"] = mid
        rec.add(at, "milestone", None, mid, ticket=t["ticket_id"])

    while created < budget and day < MAX_DAYS:
        seq += 1
        mid = f"{team.key}-{team.kind[0].upper()}{seq}"
        start = day
        due = start + team.span_days
        milestone = {"milestone_id": mid, "project": team.key, "name": f"{team.key} {team.kind} {seq}",
                     "kind": team.kind, "start_at": start + 0.375, "due_at": due + 0.75,
                     "completed_at": None}
        milestones.append(milestone)
        rec.add(start + 0.375, "due_at", None, due + 0.75, milestone=mid)
        workdays = sum(1 for d in range(start, due) if _calendar(d)[0])
        nominal = team.members * team.velocity
        velocity = np.mean(recent[-20:]) if len(recent) >= 5 else nominal * rng.uniform(0.8, 1.2)
        # planners never plan on (almost) nothing, even after a quiet spell such as the holidays
        target = max(team.optimism * max(velocity, 0.3 * nominal) * workdays, 1.0)
        scope = []
        at = start + 0.375
        backlog.sort(key=lambda t: (PRIORITY_RANK[t["priority"]], t["created_at"]))
        committed = 0.0
        while backlog and committed < target:
            t = backlog.pop(0)
            assign(t, mid, at)
            if rng.random() < 0.15:  # re-estimated at planning
                new_points = float(_choice(rng, POINTS))
                if new_points != t["story_points"]:
                    rec.add(at + 0.001, "story_points", repr(t["story_points"]), repr(new_points),
                            ticket=t["ticket_id"])
                    t["story_points"] = new_points
            scope.append(t)
            committed += t["story_points"]
        while committed < target and created < budget:
            t = new_ticket(start - rng.uniform(0.5, 40.0), unplanned=False)
            assign(t, mid, at + rng.uniform(0.0, 0.05))
            scope.append(t)
            committed += t["story_points"]
        if programs is not None:
            programs.join(rng, team.key, milestone, scope, done_index)
        replanned = False
        day_done_points = []
        d = start
        reopen_queue: list[tuple[float, int, dict]] = []
        while d < due:
            week = d // 7
            if week not in week_factor:
                week_factor[week] = _capacity_factor(rng, shared, week)
            working, holiday = _calendar(d)
            present = sum(1 for _ in range(team.members) if rng.random() > 0.05)
            capacity = (team.velocity * present * week_factor[week] * (0.1 if holiday else 1.0)) if working else 0.0
            frozen = freeze is not None and d >= freeze[0] and d >= due - freeze[1]
            if frozen:
                capacity = 0.0
            # unplanned work arrives
            if working and created < budget and rng.random() < team.unplanned_per_week / 5:
                # filed before the day's work starts (09:00), so no change precedes it
                t = new_ticket(d + rng.uniform(0.3, 0.7) / 2, unplanned=True)
                assign(t, mid, t["created_at"] + 0.01)
                scope.append(t)
            # reopenings due today
            while reopen_queue and reopen_queue[0][0] < d + 1:
                when, _, t = heapq.heappop(reopen_queue)
                when = min(when, d + 0.35)  # reopened before the day's work on it starts (09:00)
                if t["milestone"] == mid and t["status"] == TicketStatus.DONE:
                    rec.add(when, "status", TicketStatus.DONE, TicketStatus.TODO, ticket=t["ticket_id"])
                    rec.add(when, "resolution", "Fixed", None, ticket=t["ticket_id"])
                    t["status"] = TicketStatus.TODO
                    t["remaining"] = 0.3 * t["effort"]
                    t["resolved_at"] = None
            # work: each present member takes the next workable ticket
            open_ = sorted((t for t in scope if t["status"] != TicketStatus.DONE and t["milestone"] == mid),
                           key=lambda t: (PRIORITY_RANK[t["priority"]], t["created_at"]))
            done_points = 0.0
            if capacity > 0:
                workable = []
                for t in open_:
                    bu = t.get("blocked_until")
                    # workable once what it waits on is done before the day's work starts (09:00)
                    blocked = "depends_on" in t and bu is not None and bu > d + 0.37
                    if blocked:
                        if t["status"] != TicketStatus.BLOCKED:
                            rec.add(d + 0.4, "status", t["status"], TicketStatus.BLOCKED, ticket=t["ticket_id"])
                            t["status"] = TicketStatus.BLOCKED
                        continue
                    if t["status"] == TicketStatus.BLOCKED:
                        unblocked = d + 0.37 if bu is None else min(bu, d + 0.37)  # before the day's work
                        rec.add(unblocked, "status", TicketStatus.BLOCKED, TicketStatus.TODO, ticket=t["ticket_id"])
                        t["status"] = TicketStatus.TODO
                    workable.append(t)
                    if len(workable) >= present:
                        break
                share = capacity / max(1, present)
                for i, t in enumerate(workable):
                    when = d + 0.375 + 0.05 * i
                    if t["status"] == TicketStatus.TODO:
                        rec.add(when, "status", TicketStatus.TODO, TicketStatus.IN_PROGRESS, ticket=t["ticket_id"])
                        t["status"] = TicketStatus.IN_PROGRESS
                    if t["assignee"] is None or rng.random() < 0.01:
                        who = f"{team.key}.dev{rng.randint(1, team.members)}"
                        if who != t["assignee"]:
                            rec.add(when, "assignee", t["assignee"], who, ticket=t["ticket_id"])
                            t["assignee"] = who
                    t["remaining"] -= share
                    if t["remaining"] <= 0:
                        finish = max(d + rng.uniform(0.45, 0.75), when + 0.01)  # never before its start
                        rec.add(finish, "status", TicketStatus.IN_PROGRESS, TicketStatus.DONE, ticket=t["ticket_id"])
                        rec.add(finish, "resolution", None, "Fixed", ticket=t["ticket_id"])
                        t["status"] = TicketStatus.DONE
                        t["resolved_at"] = finish
                        done_index[t["ticket_id"]] = finish
                        done_points += t["story_points"]
                        p = team.reopen_p * (2.0 if t["type"] == "Bug" else 1.0)
                        if rng.random() < p:
                            heapq.heappush(reopen_queue, (finish + rng.uniform(1, 7), id(t), t))
                    if rng.random() < 0.002:
                        new_p = rng.choice([p for p in PRIORITY_RANK if p != t["priority"]])
                        rec.add(when + 0.01, "priority", t["priority"], new_p, ticket=t["ticket_id"])
                        t["priority"] = new_p
            day_done_points.append(done_points)
            if not frozen:  # planners keep planning on the velocity of working days
                recent.append(done_points)
            # mid-course correction at ~60 % of the span
            if d == start + int(0.6 * (due - start)) and not replanned:
                replanned = True
                left = [t for t in scope if t["status"] != TicketStatus.DONE and t["milestone"] == mid]
                need = sum(t["story_points"] for t in left)
                recent_v = np.mean(day_done_points[-10:]) if day_done_points else 0.0
                can = recent_v * (due - d) + 1e-9
                if need > 1.15 * can:
                    if rng.random() < team.replan_p:
                        push = rng.choice((7, 14))
                        rec.add(d + 0.6, "due_at", due + 0.75, due + push + 0.75, milestone=mid)
                        due += push
                        milestone["due_at"] = due + 0.75
                    elif rng.random() < team.descope_p:
                        for t in sorted(left, key=lambda t: (-PRIORITY_RANK[t["priority"]], -t["created_at"])):
                            if need <= can or t["status"] == TicketStatus.IN_PROGRESS:
                                continue
                            rec.add(d + 0.65, "milestone", mid, None, ticket=t["ticket_id"])
                            t["milestone"] = None
                            backlog.append(t)
                            need -= t["story_points"]
            d += 1
        milestone["completed_at"] = due + 0.75
        for t in scope:
            if t["status"] != TicketStatus.DONE and t["milestone"] == mid:
                rec.add(due + 0.76, "milestone", mid, None, ticket=t["ticket_id"])
                t["milestone"] = None
                backlog.append(t)
        day = due + 1


def _events_frame(rec: _Recorder) -> pd.DataFrame:
    frame = pd.DataFrame({
        "ticket_id": rec.ticket, "milestone_id": rec.milestone,
        "at": np.asarray(rec.at, dtype=float), "field": rec.field,
        "from_value": rec.old, "to_value": rec.new,
    })
    due = frame["field"] == "due_at"
    for col in ("from_value", "to_value"):
        values = frame.loc[due, col]
        frame.loc[due, col] = [None if v is None else _iso(v) for v in values]
        frame[col] = frame[col].astype(object)
    return frame


def _iso(days: float) -> str:
    return (EPOCH + pd.to_timedelta(days, unit="D")).floor("s").isoformat()


def _to_time(days):
    """Float days since EPOCH as UTC timestamps (whole seconds), positionally."""
    series = EPOCH + pd.to_timedelta(pd.Series(np.asarray(days, dtype="float64")), unit="D")
    return series.dt.floor("s").array


def generate(config: SimulationConfig) -> Tables:
    """Simulate a history and return it as canonical tables, cut at an export time."""
    rng = random.Random(config.seed)
    teams = [_team(rng, i, config.optimism) for i in range(config.projects)]
    # budgets follow capacity, so every team covers about the same stretch of calendar
    weights = np.array([t.members * t.velocity * rng.uniform(0.8, 1.2) for t in teams])
    budgets = np.maximum(20, np.round(weights / weights.sum() * config.tickets)).astype(int)
    rec = _Recorder()
    tickets: list[dict] = []
    milestones: list[dict] = []
    done_index: dict[str, float] = {}
    links = []
    starts = [0]
    shared = (config.seed, config.shared_shock, config.capacity_sigma)
    programs = None if config.program_every_days is None else Programs(
        config.seed, [t.key for t in teams], config.program_every_days, config.program_teams,
        config.program_dependency_share)
    for team, budget in progress(zip(teams, budgets), "simulating teams", total=len(teams), unit="team"):
        before = len(tickets)
        upstream = sorted(tickets[starts[max(0, len(starts) - 1 - UPSTREAM_TEAMS)]:], key=lambda t: t["created_at"])
        _simulate_project(rng, team, int(budget), rec, tickets, milestones, done_index,
                          first_day=rng.randint(0, 20), upstream=upstream, shared=shared, programs=programs,
                          freeze=None if config.freeze_from_day is None else (config.freeze_from_day, config.freeze_days))
        starts.append(len(tickets))
        links += [{"from_ticket": t["ticket_id"], "to_ticket": t["depends_on"], "kind": "depends_on",
                   "created_at": t["linked_at"]} for t in tickets[before:] if "depends_on" in t]
    if programs is not None:
        epics, parents = programs.epics(rec.add)
        tickets += epics
        links += parents
    events = _events_frame(rec)
    end_day = float(events["at"].max())
    cut = end_day * (1 - config.open_share)
    events = events[events["at"] <= cut]
    links = [link for link in links if link["created_at"] <= cut]
    return _assemble(tickets, milestones, events, links, cut)


def _assemble(tickets, milestones, events, links, cut: float) -> Tables:
    """Canonical tables as the export at day ``cut`` would show them."""
    ms = pd.DataFrame(milestones)
    ms = ms[ms["start_at"] <= cut].copy()
    ms.loc[ms["completed_at"] > cut, "completed_at"] = np.nan
    due_events = events[(events["field"] == "due_at") & events["milestone_id"].notna()]
    last_due = due_events.groupby("milestone_id")["to_value"].last()
    ms["due_at"] = pd.to_datetime(ms["milestone_id"].map(last_due), utc=True)
    for col in ("start_at", "completed_at"):
        ms[col] = _to_time(ms[col].to_numpy())
    tk = pd.DataFrame(tickets)
    tk = tk[tk["created_at"] <= cut].copy()
    state = last_values(events)  # as the last change before the cut left each field
    for name, column in (("status", "status"), ("assignee", "assignee"), ("priority", "priority"),
                         ("milestone", "milestone_id")):
        tk[column] = tk["ticket_id"].map(state[name]) if name in state else None
    tk["story_points"] = tk["ticket_id"].map(state["story_points"]).astype("float64")
    done_at = events[(events["field"] == "status") & (events["to_value"] == TicketStatus.DONE)]
    last_done = done_at.groupby("ticket_id")["at"].last()
    resolved = tk["ticket_id"].map(last_done).where(tk["status"] == TicketStatus.DONE)
    tk["resolved_at"] = _to_time(resolved.to_numpy())
    tk["created_at"] = _to_time(tk["created_at"].to_numpy())
    ev = events.copy()
    ev["at"] = _to_time(ev["at"].to_numpy())
    lk = pd.DataFrame(links, columns=["from_ticket", "to_ticket", "kind", "created_at"])
    lk["created_at"] = _to_time(lk["created_at"].to_numpy())
    lk = lk.drop_duplicates(["from_ticket", "to_ticket", "kind"])
    return make_tables(ms, tk, ev, lk)
