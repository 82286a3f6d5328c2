"""The simulator's programs across teams and its shared shocks: the ground truth of joint forecasts."""

import itertools
import random

import numpy as np
import pandas as pd
import pytest

from slipcast.ingest.simulated_programs import PROJECT, WORK_AROUND_DAYS
from slipcast.ingest.simulator import SimulationConfig, _capacity_factor, generate
from slipcast.ingest.tables import fingerprint


@pytest.fixture(scope="module")
def history():
    return generate(SimulationConfig(projects=6, tickets=3000, seed=2))


def _status_times(events: pd.DataFrame, status: str, how: str) -> pd.Series:
    moves = events[(events["field"] == "status") & (events["to_value"] == status)]
    return moves.groupby("ticket_id")["at"].agg(how)


def _program_milestones(t) -> pd.DataFrame:
    """Each parent link with the milestone its child was in when it was linked (its program milestone)."""
    parents = t.links[t.links["kind"] == "parent"]
    joins = t.events[(t.events["field"] == "milestone")].sort_values("at", kind="stable")
    rows = []
    for link in parents.itertuples(index=False):
        mine = joins[(joins["ticket_id"] == link.to_ticket) & (joins["at"] <= link.created_at)]
        rows.append({"epic": link.from_ticket, "child": link.to_ticket, "milestone": mine["to_value"].iloc[-1]})
    return pd.DataFrame(rows)


def test_programs_are_epics_over_milestones_of_several_teams(history):
    tickets = history.tickets.set_index("ticket_id")
    epics = tickets[tickets["type"] == "Epic"]
    assert len(epics) >= 10 and (epics["project"] == PROJECT).all()
    assert list(epics.index) == [f"{PROJECT}-{n}" for n in range(1, len(epics) + 1)]
    members = _program_milestones(history)
    assert set(members["epic"]) == set(epics.index)  # every epic has children, in a milestone when linked
    milestones = history.milestones.set_index("milestone_id")
    members["project"] = members["milestone"].map(milestones["project"])
    assert (members["project"] == members["child"].map(tickets["project"])).all()  # its own team's milestone
    assert members.groupby("epic")["project"].nunique().min() >= 2
    # an epic is done when the last of its milestones closes, and open while any is
    closed = members.groupby("epic")["milestone"].agg(lambda ms: milestones.loc[list(ms), "completed_at"].max()
                                                      if milestones.loc[list(ms), "completed_at"].notna().all()
                                                      else pd.NaT)
    done = epics["status"] == "done"
    assert (done == closed.reindex(epics.index).notna()).all()
    assert (epics.loc[done, "resolved_at"] == closed[done[done].index]).all()


def test_later_teams_of_a_program_wait_on_earlier_teams_and_their_wait_ends_when_the_blocker_finishes(history):
    """A program's dependencies cross teams inside the program; a blocked ticket is unblocked the
    moment the ticket it waits on is done (or by the work-around): the delay goes through."""
    tickets = history.tickets.set_index("ticket_id")
    members = _program_milestones(history).set_index("child")
    deps = history.links[history.links["kind"] == "depends_on"]
    inside = deps[deps["from_ticket"].isin(members.index) & deps["to_ticket"].isin(members.index)]
    inside = inside[inside["from_ticket"].map(members["epic"]) == inside["to_ticket"].map(members["epic"])]
    assert len(inside) >= 15
    assert (inside["from_ticket"].map(tickets["project"]) != inside["to_ticket"].map(tickets["project"])).all()
    ev = history.events
    unblocked = ev[(ev["field"] == "status") & (ev["from_value"] == "blocked")].groupby("ticket_id")["at"].min()
    blocker_done = inside["to_ticket"].map(_status_times(ev, "done", "max"))
    waited = inside["from_ticket"].map(unblocked)
    assert (waited == blocker_done).sum() >= 8  # unblocked at the very second its blocker was done


def test_a_waiting_ticket_never_starts_before_what_it_waits_on_is_done_unless_worked_around():
    """The rule of every dependency: a ticket is workable once the ticket it waits on is done, or
    once the team works around it 20-60 days after the link; so its first start (and any finish)
    comes after the blocker's last finish, or 20 days or more after the link."""
    t = generate(SimulationConfig(projects=6, tickets=6000, seed=4))
    ev = t.events
    started, first_done = _status_times(ev, "in_progress", "min"), _status_times(ev, "done", "min")
    blocker_done = _status_times(ev, "done", "max")
    deps = t.links[t.links["kind"] == "depends_on"]
    start = deps["from_ticket"].map(started)
    done_at = deps["to_ticket"].map(blocker_done)
    worked_around = start >= deps["created_at"] + pd.Timedelta(days=WORK_AROUND_DAYS[0])
    waited = start >= done_at
    assert start.notna().sum() >= 400
    assert (waited | worked_around)[start.notna()].all()
    finished = deps["from_ticket"].map(first_done)
    assert (finished >= done_at)[~worked_around & finished.notna()].all()
    assert waited.sum() > 250 and (worked_around & ~waited).sum() > 20  # both happen, waiting far more often


def _slip_by_milestone(t) -> pd.DataFrame:
    """Each closed milestone with the share of the points committed at its start not done by its
    first due date."""
    ev = t.events
    ms = t.milestones.set_index("milestone_id")
    ms = ms[ms["completed_at"].notna()]
    due = ev[(ev["field"] == "due_at") & ev["milestone_id"].notna()].groupby("milestone_id")["to_value"].first()
    first_due = pd.to_datetime(due, utc=True)
    joins = ev[(ev["field"] == "milestone") & ev["to_value"].isin(ms.index)]
    committed = joins[joins["at"] <= joins["to_value"].map(ms["start_at"]) + pd.Timedelta(hours=2)]
    points = committed["ticket_id"].map(t.tickets.set_index("ticket_id")["story_points"])
    late = ~(committed["ticket_id"].map(_status_times(ev, "done", "min")) <= committed["to_value"].map(first_due))
    by = committed.assign(points=points, late=late * points).groupby("to_value")
    return ms.assign(slip=by["late"].sum() / by["points"].sum()).dropna(subset=["slip"])


def _cross_team_correlation(t) -> float:
    """The correlation, over every calendar week and every two teams with a milestone open in it,
    of the two milestones' slips (each as a difference from its team's mean slip)."""
    ms = _slip_by_milestone(t)
    ms["slip"] -= ms.groupby("project")["slip"].transform("mean")
    weeks: dict[int, dict[str, float]] = {}
    for m in ms.itertuples():
        first, last = (int((at - pd.Timestamp("2022-01-03", tz="UTC")).days) // 7 for at in (m.start_at, m.completed_at))
        for week in range(first, last + 1):
            weeks.setdefault(week, {})[m.project] = m.slip
    pairs = [(a[1], b[1]) for open_ in weeks.values() for a, b in itertools.combinations(sorted(open_.items()), 2)]
    x, y = np.array(pairs).T
    return float(np.corrcoef(x, y)[0, 1])


def test_a_shared_shock_makes_different_teams_milestones_slip_together():
    """Same teams, same seed, programs off: with every team's weekly capacity shock shared, the
    milestones different teams have open in the same weeks slip together far more than with none."""
    config = {"projects": 12, "tickets": 12000, "seed": 1, "program_every_days": None}
    independent = _cross_team_correlation(generate(SimulationConfig(**config, shared_shock=0.0)))
    shared = _cross_team_correlation(generate(SimulationConfig(**config, shared_shock=1.0)))
    assert abs(independent) < 0.05
    assert shared > independent + 0.025


def test_a_weeks_shock_is_every_teams_and_a_share_of_none_is_the_old_noise():
    one, other = random.Random(1), random.Random(2)
    assert _capacity_factor(one, (7, 1.0, 0.25), 30) == _capacity_factor(other, (7, 1.0, 0.25), 30)
    assert _capacity_factor(one, (7, 1.0, 0.25), 30) != _capacity_factor(other, (7, 1.0, 0.25), 31)
    old, new = random.Random(3), random.Random(3)
    assert [old.lognormvariate(0.0, 0.25) for _ in range(50)] == [_capacity_factor(new, (7, 0.0, 0.25), w) for w in range(50)]


def test_same_seed_same_programs_other_seed_other_programs():
    a, b, c = (generate(SimulationConfig(projects=4, tickets=800, seed=s)) for s in (5, 5, 6))
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)
    assert (a.tickets["type"] == "Epic").any() and (c.tickets["type"] == "Epic").any()


@pytest.mark.parametrize("bad", [{"shared_shock": 1.5}, {"program_every_days": 0}, {"program_teams": (1, 3)},
                                 {"program_teams": (4, 2)}, {"program_dependency_share": -0.1}])
def test_a_config_out_of_range_is_refused(bad):
    with pytest.raises(ValueError):
        SimulationConfig(**bad)
