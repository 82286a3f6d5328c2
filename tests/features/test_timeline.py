"""The feature core's primitives against plain pandas: as-of lookups, running sums, joins,
membership intervals."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from slipcast.features.timeline import FAR_FUTURE, Timeline, _membership, last_of_each, matching, running_sum

keys = st.integers(0, 5)
times = st.integers(0, 50)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(keys, times), max_size=60), st.lists(st.tuples(st.integers(-1, 6), times), min_size=1,
                                                                 max_size=30))
def test_find_equals_merge_asof_backward(rows, queries):
    key = np.array([k for k, _ in rows], dtype=np.int64)
    at = np.array([t for _, t in rows], dtype=np.int64)
    tl = Timeline(key, at, {"row": np.arange(len(rows))})
    q_key = np.array([k for k, _ in queries], dtype=np.int64)
    q_at = np.array([t for _, t in queries], dtype=np.int64)
    got = tl.get("row", tl.find(q_key, q_at), -1)

    left = pd.DataFrame({"key": q_key, "at": q_at, "q": np.arange(len(queries))}).sort_values("at", kind="stable")
    right = pd.DataFrame({"key": key, "at": at, "row": np.arange(len(rows))}).sort_values("at", kind="stable")
    expected = pd.merge_asof(left, right, on="at", by="key", direction="backward").sort_values("q")
    np.testing.assert_array_equal(got, expected["row"].fillna(-1).to_numpy(np.int64))


@given(arrays(np.int64, st.integers(0, 40), elements=st.integers(0, 4)),
       st.data())
def test_running_sum_equals_groupby_cumsum(unsorted_key, data):
    key = np.sort(unsorted_key)
    x = data.draw(arrays(np.int64, len(key), elements=st.integers(-3, 3)))
    expected = pd.Series(x).groupby(key).cumsum().to_numpy() if len(x) else np.zeros(0, np.int64)
    np.testing.assert_array_equal(running_sum(key, x), expected)


@given(arrays(np.int64, st.integers(0, 30), elements=st.integers(0, 6)), arrays(np.int64, st.integers(0, 10),
                                                                                 elements=st.integers(-1, 7)))
def test_matching_is_a_one_to_many_join(unsorted_keys, queries):
    keys_ = np.sort(unsorted_keys)
    pos, owner = matching(keys_, queries)
    got = sorted(zip(owner.tolist(), pos.tolist()))
    expected = sorted((q, i) for q, value in enumerate(queries) for i in np.flatnonzero(keys_ == value))
    assert got == expected


@given(arrays(np.int64, st.integers(0, 40), elements=st.integers(0, 5)))
def test_last_of_each_marks_the_last_row_per_key(key):
    expected = ~pd.Series(key).duplicated(keep="last").to_numpy()
    np.testing.assert_array_equal(last_of_each(key), expected)


@st.composite
def member_histories(draw):
    """Per (ticket, milestone): joins and leaves at increasing times, in any order: a history
    that starts mid-way (a leave first), a truncated changelog (a join twice, a leave twice)."""
    ticket, join, leave, at = [], [], [], []
    for t in range(draw(st.integers(1, 4))):
        for m in range(draw(st.integers(1, 3))):
            now = draw(st.integers(0, 10))
            for is_join in draw(st.lists(st.booleans(), max_size=6)):
                now += draw(st.integers(0, 10))
                ticket.append(t)
                join.append(m if is_join else -1)
                leave.append(-1 if is_join else m)
                at.append(now)
    order = np.argsort(at, kind="stable")  # events arrive by time, pairs interleaved
    return [np.asarray(v, dtype=np.int64)[order] for v in (ticket, join, leave, at)]


@settings(max_examples=150, deadline=None)
@given(member_histories())
def test_membership_intervals_replay_the_joins_and_leaves(history):
    ticket, joins, leaves, at = history
    got = _membership(ticket, joins, leaves, at)
    intervals = sorted(zip(got["ticket"].tolist(), got["milestone"].tolist(), got["start"].tolist(),
                           got["end"].tolist()))
    expected = []
    for t in np.unique(ticket):
        for m in np.unique(np.concatenate([joins, leaves])):
            if m < 0:
                continue
            start = None
            for i in np.flatnonzero(ticket == t):
                if joins[i] == m and start is None:  # a join while in the milestone changes nothing
                    start = at[i]
                elif leaves[i] == m and start is not None:  # a leave with nothing open closes nothing
                    expected.append((int(t), int(m), int(start), int(at[i])))
                    start = None
            if start is not None:
                expected.append((int(t), int(m), int(start), FAR_FUTURE))
    assert intervals == sorted(expected)
    assert list(got["milestone"]) == sorted(got["milestone"])  # ordered by milestone
