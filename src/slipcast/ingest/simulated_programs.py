"""Programs across teams in the simulator: milestones of different teams joined by dependencies.

A program (a platform migration, say) starts every ``every_days`` days and picks 2-4 teams (the
bounds ``teams``), from a generator of its own seeded by the history's seed and the program's
number, so the pick is the same whatever the order the teams are simulated in. Each picked team joins with the first
milestone it starts on or after the program's start; the tickets it commits at that planning are
the program's work there. Teams are simulated in order, so when a team joins, the finish of every
ticket of the teams that joined before it is known: a share of its committed tickets waits on a
ticket of an earlier team's program milestone, blocked until that ticket finishes or until the
team works around it 20-60 days later, the rule of every cross-team dependency in the simulator.
A blocker that slips holds its dependents back: that is what ties a program's milestones, beside
the weeks' shared capacity shocks that tie every team's.

A tracker shows a program as an epic (project ``PGM``) whose children are the committed tickets;
the epic is done when the last of its milestones closes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from slipcast.core.vocabulary import TicketStatus

PROJECT = "PGM"
WORK_AROUND_DAYS = (20.0, 60.0)  # a dependency still open after this long is worked around
PLANNING_DAYS = 0.05  # a planning's assignments are all made this long after it starts


@dataclass
class _Member:
    """A team's milestone in a program and the tickets it committed to it at planning."""

    milestone: dict  # the simulator's record: its completion is final once the team has run
    tickets: list[dict]
    joined_at: float  # when the planning was over: the tickets are linked to the program's epic then


@dataclass
class _Program:
    start: int
    teams: frozenset[str]
    members: list[_Member] = field(default_factory=list)  # in the order the teams joined (simulation order)


class Programs:
    """The programs of one simulated history, filled in as the teams are simulated."""

    def __init__(self, seed: int, team_keys: list[str], every_days: int, teams: tuple[int, int],
                 dependency_share: float):
        self.seed = seed
        self.team_keys = team_keys
        self.every_days = every_days
        self.teams = teams
        self.dependency_share = dependency_share
        self._programs: dict[int, _Program] = {}
        self._planned: dict[str, float] = {}  # each team's last planning time

    def _program(self, number: int) -> _Program:
        if number not in self._programs:
            rng = random.Random(f"slipcast-program:{self.seed}:{number}")
            size = rng.randint(min(self.teams[0], len(self.team_keys)), min(self.teams[1], len(self.team_keys)))
            picked = frozenset(self.team_keys[i] for i in rng.sample(range(len(self.team_keys)), size))
            self._programs[number] = _Program(number * self.every_days, picked)
        return self._programs[number]

    def join(self, rng: random.Random, team: str, milestone: dict, scope: list[dict],
             done_index: dict[str, float]) -> None:
        """``team`` plans ``milestone`` with ``scope`` committed: it joins every program that picked
        it and started since its previous planning (or ever, at its first), and a share of the
        committed tickets it never started waits on the work of teams that joined before it."""
        at = milestone["start_at"]
        first = int(self._planned[team] // self.every_days) + 1 if team in self._planned else 1
        self._planned[team] = at
        for number in range(first, int(at // self.every_days) + 1):
            program = self._program(number)
            committed = [t for t in scope if "program" not in t]  # a ticket has one epic
            if team not in program.teams or not committed:
                continue
            # what the teams that joined before have committed and filed by now
            blockers = [u for m in program.members for u in m.tickets if u["created_at"] <= at]
            program.members.append(_Member(milestone, committed, at + PLANNING_DAYS))
            for t in committed:
                t["program"] = number
                never_started = t["status"] == TicketStatus.TODO and t["assignee"] is None
                if blockers and never_started and "depends_on" not in t and rng.random() < self.dependency_share:
                    blocker = blockers[rng.randrange(len(blockers))]
                    t["depends_on"], t["linked_at"] = blocker["ticket_id"], at
                    t["blocked_until"] = min(done_index.get(blocker["ticket_id"], np.inf),
                                             at + rng.uniform(*WORK_AROUND_DAYS))

    def epics(self, record: Callable[..., None]) -> tuple[list[dict], list[dict]]:
        """Each program of two teams or more as an epic ticket (its events given to ``record(at,
        field, old, new, ticket)``) and its parent links to the committed tickets."""
        tickets: list[dict] = []
        links: list[dict] = []
        joint = [p for _, p in sorted(self._programs.items()) if len(p.members) >= 2]
        for n, program in enumerate(joint, start=1):
            key = f"{PROJECT}-{n}"
            created = program.start + 0.3  # filed before the first team plans (09:00)
            started = min(m.joined_at for m in program.members)
            closed = max(m.milestone["completed_at"] for m in program.members)
            record(created, "status", None, TicketStatus.TODO, key)
            record(started, "status", TicketStatus.TODO, TicketStatus.IN_PROGRESS, key)
            record(closed, "status", TicketStatus.IN_PROGRESS, TicketStatus.DONE, key)
            record(closed, "resolution", None, "Fixed", key)
            tickets.append({"ticket_id": key, "project": PROJECT, "type": "Epic", "created_at": created})
            links += [{"from_ticket": key, "to_ticket": t["ticket_id"], "kind": "parent", "created_at": m.joined_at}
                      for m in program.members for t in m.tickets]
        return tickets, links
