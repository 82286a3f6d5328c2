"""The public-data evaluation: loaders, protocols, leak audit, one small run per dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from slipcast.evaluation.classifiers import fit_binary, guarded_forward
from slipcast.evaluation.datasets.emse2017_issue_delay import (
    feature_columns as issue_columns,
)
from slipcast.evaluation.datasets.emse2017_issue_delay import load_issues
from slipcast.evaluation.datasets.tse2017_sprints import (
    board_history,
    load_sprints,
    read_iterations,
)
from slipcast.evaluation.issue_delay import evaluate_file, value_leaks
from slipcast.evaluation.results import DataMissing, eval_real
from slipcast.evaluation.sprints import evaluate_frame, three_classes
from slipcast.ingest.importers.report import ImportReport
from tests.helpers import SHARED_DATA


def _dataset(name: str):
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real data absent: {path} (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="module")
def sprints_dir():
    return _dataset("tse2017-sprints")


@pytest.fixture(scope="module")
def delay_dir():
    return _dataset("emse2017-issue-delay")


def test_sprint_names_with_commas_are_repaired_and_every_row_accounted(sprints_dir):
    report = ImportReport(source=str(sprints_dir))
    path = sprints_dir / "JBoss" / "jboss_iteration_0.csv"
    frame = read_iterations(path, report)
    lines = path.read_text().splitlines()
    assert report.read["sprints"] == len(lines) - 1
    assert report.accepted["sprints"] + len(report.rejections) == report.read["sprints"]
    commas = frame[frame["name"].str.contains(",")]
    assert len(commas) >= 1  # a plain CSV parser would have shifted these rows' numbers
    raw = next(line for line in lines[1:] if line.count(",") > lines[0].count(","))
    row = frame[frame["sprintid"] == int(raw.split(",")[1])].iloc[0]
    assert row["vel_diff"] == float(raw.split(",")[-16])
    report.check_reconciled()


def test_non_utf8_sprint_file_is_decoded_with_a_warning(sprints_dir):
    report = ImportReport(source=str(sprints_dir))
    frame = read_iterations(sprints_dir / "JIRA" / "jira_iteration_0.csv", report)
    assert len(frame) == report.accepted["sprints"] > 1000
    assert any("jira_iteration_0.csv" in w and "cp1252" in w for w in report.warnings)


def test_board_history_uses_only_earlier_sprints(sprints_dir):
    frame = load_sprints(sprints_dir, "apache", 0)
    history = board_history(frame.sample(frac=1.0, random_state=1))  # row order must not matter
    board = frame[frame["boardid"] == frame["boardid"].value_counts().index[0]].sort_values("sprintid")
    first, second, third = board.index[:3]
    assert np.isnan(history.loc[first, "past_slip_rate"])
    assert history.loc[third, "past_slip_rate"] == np.mean(board.loc[[first, second], "vel_diff"] < 0)
    assert history.loc[second, "board_last_under"] == float(board.loc[first, "vel_diff"] < 0)


def test_three_classes_use_training_boundaries():
    train = np.arange(100.0)
    assert list(three_classes(np.array([0.0, 50.0, 99.0]), train)) == [0, 1, 2]


@pytest.mark.slow  # real data or many exports end to end: make test runs it
def test_sprint_model_beats_base_rate_forward(sprints_dir, settings):
    frame = load_sprints(sprints_dir, "apache", 0)
    binary, multi, pooled = evaluate_frame(frame, "forward", settings.evaluation, settings.training)
    scores = {r["candidate"]: r for r in binary}
    assert scores["gradient_boosting"]["brier"] < scores["base_rate"]["brier"]
    assert scores["gradient_boosting"]["roc_auc"] > 0.7
    assert {r["candidate"] for r in multi} == {"base_rate", "random", "logistic", "gradient_boosting"}
    assert len(pooled["y"]) == len(pooled["gradient_boosting"])


@pytest.mark.slow  # real data or many exports end to end: make test runs it
def test_leak_audit_flags_remaining_day_and_honest_model_is_weaker(delay_dir, settings):
    frame = load_issues(delay_dir, "duraspace", "creation")
    audit = {r["feature"]: r for r in value_leaks(frame, issue_columns(frame, True), settings.evaluation.value_leak_auc)}
    assert audit["RemainingDay"]["flagged"]
    assert not audit["workload"]["flagged"]
    with_, _ = evaluate_file(frame, True, settings.evaluation, settings.training)
    without, _ = evaluate_file(frame, False, settings.evaluation, settings.training)
    gb = lambda rows: next(r for r in rows if r["candidate"] == "gradient_boosting")  # noqa: E731
    assert gb(with_)["roc_auc"] > gb(without)["roc_auc"] + 0.05


def test_models_are_calibrated_on_rows_after_their_fit(settings):
    """The latest rows (here: nearly all slipped) set the calibration, not the earlier ones."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=800), "b": rng.normal(size=800)})
    y = (X["a"] + rng.normal(size=800) > 0).to_numpy().astype(int)
    late = int(800 * (1 - settings.training.calibration_share))
    y[late:] = (rng.random(800 - late) < 0.9).astype(int)
    model = fit_binary("logistic", X, y, settings.training)
    assert model.method in ("sigmoid", "isotonic")
    assert model.predict_proba(X.iloc[:late])[:, 1].mean() > 0.8  # uncalibrated it would be ~0.5


def test_the_guard_serves_the_base_rate_until_the_earlier_folds_show_skill(settings):
    rng = np.random.default_rng(0)
    fold = np.repeat(np.arange(5), 300)
    y = (rng.random(len(fold)) < 0.3).astype(float)
    prior = np.full(len(fold), 0.3)
    later = fold > 0
    for p, skilled in ((rng.random(len(fold)), False), (np.clip(0.15 + 0.5 * y + rng.normal(0, 0.1, len(fold)), 0, 1), True)):
        served, fell_back = guarded_forward(y, p, prior, fold, settings.training)
        assert np.isnan(served[~later]).all()  # the first fold has no earlier evidence
        assert (fell_back[later] == (not skilled)).all()
        assert np.array_equal(served[later], p[later] if skilled else prior[later])


def test_eval_real_names_missing_data(settings, tmp_path):
    s = settings.model_copy(update={"evaluation": settings.evaluation.model_copy(
        update={"shared_data_dir": tmp_path, "results_file": tmp_path / "results.md"})})
    with pytest.raises(DataMissing, match="tse2017-sprints"):
        eval_real(s)
