"""Point-in-time correctness: features never see the future; online equals offline."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from slipcast.features.milestone_features import BUG_TYPES, MILESTONE_FEATURES, _matches
from slipcast.features.now import features_now
from slipcast.features.pipeline import build_training_sets, milestone_outcomes
from slipcast.features.snapshots import Snapshots, labels, schedule, scope_rows
from slipcast.features.timeline import build_timelines, take
from slipcast.ingest.importers import run_import
from slipcast.ingest.simulator import SimulationConfig, generate
from slipcast.ingest.tables import Tables, make_tables, read_tables
from slipcast.tools.requests import truncate

UTC = "UTC"


@pytest.fixture(scope="module")
def history():
    return generate(SimulationConfig(projects=3, tickets=700, seed=11))


@pytest.fixture(scope="module")
def offline(history, settings):
    return build_training_sets(history, settings.features)


@pytest.fixture(scope="module")
def outcomes(history, settings):
    tl = build_timelines(history)
    snaps = schedule(tl, settings.features.span_fractions, None)
    scope = scope_rows(snaps, tl)
    label, known_at, _ = labels(snaps, scope, tl, settings.features.grace_days)
    return milestone_outcomes(snaps, label, known_at, tl)


def _row(tables, snap, settings, outcomes):
    feats, tickets = features_now(tables, pd.DataFrame([snap]), settings.features,
                                  outcomes[outcomes["known_at"] <= snap["as_of"]])
    tickets = pd.DataFrame(tickets).drop(columns=["snap", "row"])
    return pd.DataFrame(feats).iloc[0], tickets.sort_values("ticket_id").reset_index(drop=True)


def _mutate_future(tables: Tables, as_of, rng: np.random.Generator) -> Tables:
    """Delete, retime and rewrite what happened after as_of; add future tickets and links."""
    ev = tables.events.copy()
    future = ev.index[ev["at"] > as_of]
    drop = rng.random(len(future)) < 0.5
    ev = ev.drop(future[drop])
    later = ev.index[ev["at"] > as_of]
    ev.loc[later, "at"] = ev.loc[later, "at"] + pd.to_timedelta(rng.integers(0, 30, len(later)), unit="D")
    flip = later[rng.random(len(later)) < 0.5]
    ev.loc[flip.intersection(ev.index[ev["field"] == "status"]), "to_value"] = "done"
    tk = tables.tickets.copy()
    t0 = tk.iloc[0]
    ghost = t0.copy()
    ghost["ticket_id"], ghost["created_at"] = "GHOST-1", as_of + pd.Timedelta(hours=1)
    tk = pd.concat([tk, ghost.to_frame().T], ignore_index=True)
    mid = tables.milestones["milestone_id"].iloc[0]
    extra = pd.DataFrame([
        {"ticket_id": "GHOST-1", "at": as_of + pd.Timedelta(hours=1), "field": "milestone", "to_value": mid},
        {"ticket_id": "GHOST-1", "at": as_of + pd.Timedelta(hours=1), "field": "status", "to_value": "todo"},
    ])
    links = pd.concat([tables.links, pd.DataFrame([{"from_ticket": t0["ticket_id"], "to_ticket": "GHOST-1",
                                                    "kind": "depends_on",
                                                    "created_at": as_of + pd.Timedelta(hours=2)}])])
    return make_tables(tables.milestones, tk, pd.concat([ev, extra], ignore_index=True), links)


@given(pick=st.integers(min_value=0, max_value=10**6), seed=st.integers(min_value=0, max_value=2**31))
@hsettings(max_examples=12, deadline=None, phases=[Phase.explicit, Phase.generate],
           suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_changing_the_future_leaves_features_unchanged(history, offline, outcomes, settings, pick, seed):
    rows = offline["milestone"]
    snap = rows.iloc[pick % len(rows)][["milestone_id", "as_of"]]
    before, tickets_before = _row(history, snap, settings, outcomes)
    mutated = _mutate_future(history, snap["as_of"], np.random.default_rng(seed))
    after, tickets_after = _row(mutated, snap, settings, outcomes)
    pd.testing.assert_series_equal(before, after, check_names=False)
    pd.testing.assert_frame_equal(tickets_before, tickets_after)


def test_labels_do_not_feed_features(history, offline, settings):
    """Flip the outcome of a milestone by finishing its scope right after as_of: features
    stay, the label changes."""
    rows = offline["milestone"]
    row = rows[(rows["label"] == 1) & (rows["remaining_count"] > 0)].iloc[0]
    tl = build_timelines(history)
    scope = scope_rows(Snapshots.of(pd.DataFrame([row[["milestone_id", "as_of"]]]), tl), tl)
    committed = take(tl.tickets.array, scope.ticket)
    ev = history.events
    keep = ~((ev["at"] > row["as_of"]) & ev["ticket_id"].isin(committed) & ev["field"].isin(["status", "milestone"]))
    finished = pd.DataFrame({"ticket_id": committed, "at": row["as_of"] + pd.Timedelta(minutes=1),
                             "field": "status", "to_value": "done"})
    changed = make_tables(history.milestones, history.tickets,
                          pd.concat([ev[keep], finished], ignore_index=True), history.links)
    new = build_training_sets(changed, settings.features)["milestone"]
    new_row = new[(new["milestone_id"] == row["milestone_id"]) & (new["as_of"] == row["as_of"])].iloc[0]
    assert new_row["label"] == 0
    cols = [c for c in MILESTONE_FEATURES if not c.startswith("past_")]
    pd.testing.assert_series_equal(row[cols], new_row[cols], check_names=False)


def test_online_features_equal_offline(history, offline, outcomes, settings):
    rows = offline["milestone"].sample(8, random_state=2)
    for _, row in rows.iterrows():
        now = truncate(history, row["as_of"])
        online, _ = _row(now, row[["milestone_id", "as_of"]], settings, outcomes)
        pd.testing.assert_series_equal(online[MILESTONE_FEATURES], row[MILESTONE_FEATURES], check_names=False,
                                       obj=f"{row['milestone_id']} at {row['as_of']}")


def test_values_match_alike_as_a_request_and_a_store_hold_them():
    """A request's values are Python objects, a store's Arrow strings: each is matched its own
    way (``_matches``), with the same answer: case-insensitive, and never for a missing value."""
    values = ["Bug", "DEFECT", "story", None, "bug ", "Incident"]
    expected = [True, True, False, False, False, True]
    assert _matches(pd.Index(values, dtype=object), BUG_TYPES).tolist() == expected
    assert _matches(pd.Index(values, dtype="str"), BUG_TYPES).tolist() == expected
    assert _matches(pd.Index([3, 4]), BUG_TYPES).tolist() == [False, False]  # no string at all


def test_schedule_never_passes_known_due_date(history, offline):
    rows = offline["milestone"]
    assert (rows["days_left"] > 0).all()
    assert rows["span_elapsed"].between(0, 1).all()
    per = rows.groupby("milestone_id").size()
    assert per.max() <= 10 and per.median() >= 5


def _tiny(events, due="2024-01-15T17:00:00+00:00", completed=None) -> Tables:
    ms = pd.DataFrame([{"milestone_id": "M1", "project": "P", "name": "r1", "kind": "release",
                        "start_at": pd.Timestamp("2024-01-01", tz=UTC), "due_at": pd.Timestamp(due),
                        "completed_at": completed}])
    tk = pd.DataFrame([{"ticket_id": f"T{i}", "project": "P", "created_at": pd.Timestamp("2023-12-20", tz=UTC),
                        "status": "todo"} for i in (1, 2)])
    base = [
        ("M1", None, "2024-01-01", "due_at", None, "2024-01-15T17:00:00+00:00"),
        (None, "T1", "2024-01-01", "milestone", None, "M1"), (None, "T2", "2024-01-01", "milestone", None, "M1"),
        (None, "T1", "2023-12-20", "status", None, "todo"), (None, "T2", "2023-12-20", "status", None, "todo"),
        (None, "T9", "2024-02-01", "status", None, "todo"),  # data runs past the due date
    ]
    ev = pd.DataFrame(base + events, columns=["milestone_id", "ticket_id", "at", "field", "from_value", "to_value"])
    ev["at"] = pd.to_datetime(ev["at"], utc=True)
    tk = pd.concat([tk, pd.DataFrame([{"ticket_id": "T9", "project": "P",
                                       "created_at": pd.Timestamp("2024-02-01", tz=UTC), "status": "todo"}])])
    return make_tables(ms, tk, ev, pd.DataFrame())


def _labels(tables, settings, grace=0.0):
    s = settings.features.model_copy(update={"grace_days": grace})
    return build_training_sets(tables, s)["milestone"].set_index("as_of")["label"]


def test_label_all_done_before_due_is_on_time(settings):
    done = [(None, "T1", "2024-01-05", "status", "todo", "done"), (None, "T2", "2024-01-14", "status", "todo", "done")]
    assert set(_labels(_tiny(done), settings)) == {0.0}


def test_label_moved_out_counts_as_slipped(settings):
    events = [(None, "T1", "2024-01-05", "status", "todo", "done"), (None, "T2", "2024-01-10", "milestone", "M1", None)]
    lab = _labels(_tiny(events), settings)
    assert lab[lab.index < pd.Timestamp("2024-01-10", tz=UTC)].eq(1).all()
    # after the move, T2 is no longer committed: the remaining scope is done in time
    assert lab[lab.index > pd.Timestamp("2024-01-10", tz=UTC)].eq(0).all()


def test_label_uses_due_date_known_at_as_of_and_grace(settings):
    events = [(None, "T1", "2024-01-05", "status", "todo", "done"),
              ("M1", None, "2024-01-08", "due_at", "2024-01-15T17:00:00+00:00", "2024-01-22T17:00:00+00:00"),
              (None, "T2", "2024-01-18", "status", "todo", "done")]
    lab = _labels(_tiny(events, due="2024-01-22T17:00:00+00:00"), settings)
    assert lab[lab.index < pd.Timestamp("2024-01-08", tz=UTC)].eq(1).all()  # judged by the old date
    assert lab[lab.index > pd.Timestamp("2024-01-08", tz=UTC)].eq(0).all()  # the replanned date is met
    late = [(None, "T1", "2024-01-05", "status", "todo", "done"), (None, "T2", "2024-01-16", "status", "todo", "done")]
    assert set(_labels(_tiny(late), settings)) == {1.0}
    assert set(_labels(_tiny(late), settings, grace=2.0)) == {0.0}


def test_open_outcomes_are_unlabelled(settings):
    tables = _tiny([(None, "T1", "2024-01-05", "status", "todo", "done")])
    ev = tables.events[tables.events["ticket_id"] != "T9"]
    open_ = make_tables(tables.milestones, tables.tickets[tables.tickets["ticket_id"] != "T9"], ev, tables.links)
    rows = build_training_sets(open_, settings.features)["milestone"]
    assert rows["label"].isna().all() and len(rows) > 0


def test_duraspace_snapshots(tmp_path, settings, duraspace_dir):
    run_import("jira-json", duraspace_dir, tmp_path / "dura", settings)
    sets = build_training_sets(read_tables(tmp_path / "dura"), settings.features)
    for target, frame in sets.items():
        print(f"duraspace {target}: {len(frame)} snapshots, {int(frame['label'].notna().sum())} labelled, "
              f"{int((frame['label'] == 1).sum())} slipped")
    m = sets["milestone"]
    assert len(m) > 500 and m["label"].notna().sum() > 500
    assert 0.2 < m["label"].mean() < 0.95
    assert len(sets["ticket"]) > 2000


def test_the_monte_carlo_counts_the_runs_whose_drawn_weeks_finish_the_work():
    """Per row, the share of runs whose drawn past weeks (whole weeks, then the last one's share)
    add up to the remaining count, for every week count up to the horizon: the remaining count is
    one run's own total, so a run summed wrong by any amount tells."""
    from slipcast.features.throughput import monte_carlo_on_time

    runs, seed, past, rows = 64, 5, 8, 4 * 104
    rng = np.random.default_rng(2)
    days_left = 7 * (np.repeat(np.arange(104), 4) + rng.uniform(0.001, 1, rows))  # a partial last week
    weekly = rng.poisson(rng.uniform(1, 400, (rows, 1)), (rows, past)).astype(float)
    picks = (np.random.default_rng(seed).random((104, runs)).T * past).astype(np.intp)  # the common draws
    remaining, expected = np.empty(rows), np.empty(rows)
    for i, left in enumerate(days_left / 7):
        drawn = weekly[i][picks[:, :int(np.ceil(left))]]  # (runs, weeks)
        totals = drawn[:, :-1].sum(axis=1) + drawn[:, -1] * (left - (drawn.shape[1] - 1))
        remaining[i] = totals[i % runs]
        expected[i] = (totals >= remaining[i]).mean()
    got = monte_carlo_on_time(weekly, remaining, days_left, runs, seed, 104)
    assert np.array_equal(got, expected)
    assert 0.2 < expected.mean() < 0.8


def test_a_monte_carlo_value_depends_on_its_own_row_only(settings):
    """Common random numbers, and each row simulating only its own weeks: a row's chance is the
    same alone, in any batch, and beside a milestone due years later."""
    from slipcast.features.throughput import monte_carlo_on_time

    f = settings.features
    rng = np.random.default_rng(0)
    weekly = rng.poisson(3.0, size=(40, f.throughput_weeks)).astype(float)
    remaining = rng.integers(0, 30, 40).astype(float)
    days_left = rng.uniform(0, 120, 40)
    days_left[0] = 7 * f.monte_carlo_max_weeks + 100  # due beyond the horizon
    together = monte_carlo_on_time(weekly, remaining, days_left, f.monte_carlo_runs, f.seed, f.monte_carlo_max_weeks)
    alone = [monte_carlo_on_time(weekly[i:i + 1], remaining[i:i + 1], days_left[i:i + 1], f.monte_carlo_runs, f.seed,
                                 f.monte_carlo_max_weeks)[0] for i in range(40)]
    assert np.array_equal(together, np.array(alone))
    shuffled = rng.permutation(40)
    again = monte_carlo_on_time(weekly[shuffled], remaining[shuffled], days_left[shuffled], f.monte_carlo_runs, f.seed,
                                f.monte_carlo_max_weeks)
    assert np.array_equal(again, together[shuffled])
    assert 0 < np.nanmean(together) < 1
