"""A tracker's history coded once, and the features of its milestones as of any time: every
milestone open now, or one milestone day by day.

The live service reads the canonical store that ``slipcast import`` and ``slipcast sync`` write
and forecasts every open milestone at once (docs/architecture.md, "Live state"). A milestone is
open at t when it has started by t and was not completed by t. Its features, and its open
tickets', come from ``milestone_features`` at as_of t, exactly as a training row's; the team's
past outcomes (``past_slip_rate``) from the same labels as training, each counted only once it
was known.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd

from slipcast.core.settings import FeatureSettings
from slipcast.features.milestone_features import milestone_features
from slipcast.features.pipeline import milestone_outcomes, milestone_projects
from slipcast.features.snapshots import Scope, Snapshots, labels, schedule, scope_rows
from slipcast.features.timeline import NAT, build_timelines, micros, open_at, take, timestamps
from slipcast.ingest.tables import Tables


class History:
    """The timelines of ``tables`` and the milestones' past outcomes, built once; features of
    any (milestone, as_of) pairs from them."""

    def __init__(self, tables: Tables, settings: FeatureSettings):
        self.settings = settings
        self.tl = build_timelines(tables)
        snaps = schedule(self.tl, settings.span_fractions, settings.every_n_days)
        label, known_at, _ = labels(snaps, scope_rows(snaps, self.tl), self.tl, settings.grace_days)
        self.outcomes = milestone_outcomes(snaps, label, known_at, self.tl)
        ms = tables.milestones
        names = pd.Series(np.asarray(ms["name"], dtype=object), index=np.asarray(ms["milestone_id"], dtype=object))
        self.names = names[~names.index.duplicated()]

    def open_at(self, as_of: pd.Timestamp) -> np.ndarray:
        """The ids of the milestones started, and not completed, by ``as_of``."""
        tl = self.tl
        opened = open_at(tl.milestone_start, tl.milestone_completed, _micros(as_of))
        return np.asarray(take(tl.milestones.array, np.flatnonzero(opened)))

    def features(self, milestone_ids, as_ofs, due_moved_to=None, removed: Sequence[Collection[str]] | None = None
                 ) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """For each (milestone, as_of): who it is (id, project, kind, name, start, the due date
        known then), its features, and its open tickets' features (``snap``: the pair's position).
        ``due_moved_to`` (times, one per pair): the features as if the due date were moved there
        at as_of; ``removed`` (ticket ids, a collection per pair): as if those of its committed
        tickets left the milestone at as_of (``milestone_features``)."""
        tl = self.tl
        snaps = self._snapshots(milestone_ids, as_ofs)
        moved = None if due_moved_to is None else micros(pd.Series(due_moved_to))
        scope, cut = scope_rows(snaps, tl), None
        if removed is not None:
            asked = np.flatnonzero(np.fromiter(map(len, removed), dtype=np.int64, count=len(snaps))[scope.snap] > 0)
            leaving = np.zeros(len(scope), dtype=bool)
            leaving[asked] = [t in removed[i] for i, t in zip(scope.snap[asked], take(tl.tickets.array, scope.ticket[asked]))]
            cut = np.bincount(scope.snap[leaving], minlength=len(snaps)).astype(np.float64)
            scope = Scope(scope.snap[~leaving], scope.ticket[~leaving], scope.member_until[~leaving])
        feats, tickets = milestone_features(tl, snaps, self.settings, self.outcomes, scope=scope, due_moved_to=moved,
                                            removed_now=cut)
        due = tl.due.get("due", tl.due.find(snaps.milestone, snaps.as_of), NAT)
        ids = np.asarray(milestone_ids, dtype=object)
        who = pd.DataFrame({
            "milestone_id": ids, "project": milestone_projects(snaps.milestone, tl), "kind": feats["kind"],
            "name": self.names.reindex(ids).to_numpy(),
            "start_at": timestamps(tl.milestone_start[snaps.milestone]), "due_at": timestamps(due),
            "as_of": timestamps(snaps.as_of),
        })
        return who, feats, tickets

    def committed(self, milestone_id: str, as_of: pd.Timestamp) -> list[str]:
        """The tickets committed to the milestone at ``as_of`` (its scope then), in id order."""
        scope = scope_rows(self._snapshots([milestone_id], [as_of]), self.tl)
        return sorted(map(str, take(self.tl.tickets.array, scope.ticket)))

    def knows(self, milestone_ids) -> np.ndarray:
        """Which of these milestones the store's milestones table holds (one deleted on the tracker
        may still be named by its tickets' history, but has no row, no start and no due date)."""
        return pd.Index(milestone_ids, dtype=object).isin(self.names.index)

    def _snapshots(self, milestone_ids, as_ofs) -> Snapshots:
        """(milestone, as_of) pairs as snapshots; KeyError naming milestones the history lacks."""
        snaps = Snapshots(self.tl.milestones.get_indexer(pd.Index(milestone_ids, dtype=object)).astype(np.int64),
                          micros(pd.Series(as_ofs)))
        if (snaps.milestone < 0).any():
            raise KeyError(f"unknown milestone(s): {list(np.asarray(milestone_ids)[snaps.milestone < 0][:5])}")
        return snaps

    def labels_at(self, milestone_ids, as_ofs) -> tuple[np.ndarray, pd.Series]:
        """The slip label of each (milestone, as_of) and when it became known, by the training
        rules (``snapshots.labels``: the scope committed at as_of, judged at the due date known
        then plus the grace period): NaN where not known by the end of the history."""
        snaps = self._snapshots(milestone_ids, as_ofs)
        label, known_at, _ = labels(snaps, scope_rows(snaps, self.tl), self.tl, self.settings.grace_days)
        return label, pd.Series(timestamps(known_at))


def _micros(t: pd.Timestamp) -> int:
    return int(micros(pd.Series([t]))[0])
