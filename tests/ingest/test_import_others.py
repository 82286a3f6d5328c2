"""Jira CSV, GitHub and canonical importers on realistic files, bad rows included."""

import json

import pandas as pd
import pytest

from slipcast.ingest.importers import ImportError_, run_import
from slipcast.ingest.tables import read_tables

JIRA_CSV = """Summary,Issue key,Issue id,Issue Type,Status,Project key,Priority,Assignee,Created,Resolved,Fix Version/s,Fix Version/s,Sprint,Sprint,Labels,Labels,Custom field (Story Points),Outward issue link (Blocks),Inward issue link (Dependency)
"Fix login, again",APP-1,10001,Bug,Done,APP,High,alice,12/Mar/24 9:15 AM,14/Mar/24 5:00 PM,1.2,1.3,APP Sprint 4,,backend,urgent,3,APP-2,
Add export,APP-2,10002,Story,In Progress,APP,Medium,bob,13/Mar/24 10:00 AM,,1.3,,APP Sprint 4,APP Sprint 5,,,5,,APP-1
Broken,APP-3,10003,Story,Pondering,APP,Medium,bob,13/Mar/24 10:00 AM,,,,,,,,2,,
Naive,APP-4,10004,Story,To Do,APP,Low,,not a date,,,,,,,,,,
Dup,APP-1,10005,Story,To Do,APP,Low,,13/Mar/24 10:00 AM,,,,,,,,,,
Short row,APP-6
"""


def test_jira_csv_repeated_columns_localized_dates_and_rejections(tmp_path, settings):
    (tmp_path / "export.csv").write_text(JIRA_CSV)
    report = run_import("jira-csv", tmp_path / "export.csv", tmp_path / "out", settings, tz="Europe/Berlin")
    t = read_tables(tmp_path / "out")
    assert sorted(t.tickets["ticket_id"]) == ["APP-1", "APP-2"]
    app1 = t.tickets.set_index("ticket_id").loc["APP-1"]
    assert app1["created_at"] == pd.Timestamp("2024-03-12 08:15", tz="UTC")  # 9:15 in Berlin (CET)
    assert (app1["status"], app1["story_points"]) == ("done", 3.0)
    ms = set(t.milestones["name"])
    assert {"1.2", "1.3", "APP Sprint 4", "APP Sprint 5"} <= ms
    links = set(map(tuple, t.links[["from_ticket", "to_ticket", "kind"]].values))
    # inward "Dependency" on APP-2 from APP-1: APP-2 is required by APP-1, so APP-1 depends on APP-2
    assert links == {("APP-1", "APP-2", "blocks"), ("APP-1", "APP-2", "depends_on")}
    rej = pd.read_csv(tmp_path / "out" / "rejections.csv")
    reasons = dict(zip(rej["record"], rej["reason"]))
    assert "Pondering" in reasons["row 4 (APP-3)"]
    assert "unreadable timestamp" in reasons["row 5 (APP-4)"]
    assert "duplicate" in reasons["row 6 (APP-1)"]
    assert "2 fields where the header has 19" in reasons["row 7"]
    report.check_reconciled()
    assert report.read["tickets"] == 6



def test_a_csv_link_type_nothing_places_is_kept_as_relates_with_a_warning(tmp_path, settings):
    csv_text = ("Summary,Issue key,Issue Type,Status,Project key,Created,Outward issue link (Telepathy),"
                "Outward issue link (dependent)\n"
                "A,APP-1,Story,Done,APP,12/Mar/24 9:15 AM,APP-2,APP-3\n")
    (tmp_path / "export.csv").write_text(csv_text)
    report = run_import("jira-csv", tmp_path / "export.csv", tmp_path / "out", settings)
    assert not report.rejections and report.accepted["tickets"] == 1
    links = read_tables(tmp_path / "out").links
    assert set(zip(links["to_ticket"], links["kind"])) == {("APP-2", "relates"), ("APP-3", "depends_on")}
    assert any("'Telepathy'" in w and "kept as relates" in w for w in report.warnings)


def test_csv_gantt_links_are_placed_by_their_names_alone(tmp_path, settings):
    """A CSV names a link type only: finish-start is a dependency on the row's issue (it blocks the
    linked one), an inward one the other way round; start-start ties starts only and stays relates."""
    csv_text = ("Summary,Issue key,Issue Type,Status,Project key,Created,Outward issue link (Gantt: finish-start),"
                "Inward issue link (Gantt: finish-start),Outward issue link (Gantt: start-start)\n"
                "A,APP-1,Story,Done,APP,12/Mar/24 9:15 AM,APP-2,APP-3,APP-4\n")
    (tmp_path / "export.csv").write_text(csv_text)
    report = run_import("jira-csv", tmp_path / "export.csv", tmp_path / "out", settings)
    assert not report.rejections and not [w for w in report.warnings if "link type" in w]
    links = set(map(tuple, read_tables(tmp_path / "out").links[["from_ticket", "to_ticket", "kind"]].values))
    assert links == {("APP-1", "APP-2", "blocks"), ("APP-3", "APP-1", "blocks"), ("APP-1", "APP-4", "relates")}


GITHUB = {
    "milestones": [
        {"number": 1, "title": "v1.0", "state": "closed", "created_at": "2024-01-02T10:00:00Z",
         "due_on": "2024-02-01T08:00:00Z", "closed_at": "2024-02-03T12:00:00Z"},
        {"number": 2, "title": "v1.1", "state": "open", "created_at": "2024-02-02T10:00:00Z",
         "due_on": "2024-03-01T08:00:00Z", "closed_at": None},
    ],
    "issues": [
        {"number": 10, "state": "closed", "created_at": "2024-01-03T09:00:00Z", "closed_at": "2024-01-20T09:00:00Z",
         "milestone": {"number": 1, "title": "v1.0"}, "labels": [{"name": "bug"}], "assignees": [{"login": "ana"}],
         "repository_url": "https://api.github.com/repos/acme/widget"},
        {"number": 11, "state": "open", "created_at": "2024-01-05T09:00:00Z", "closed_at": None,
         "milestone": {"number": 2, "title": "v1.1"}, "labels": [], "assignees": [],
         "repository_url": "https://api.github.com/repos/acme/widget"},
        {"number": 12, "state": "weird", "created_at": "2024-01-05T09:00:00Z"},
    ],
    "events": [
        {"id": 1, "event": "milestoned", "created_at": "2024-01-04T09:00:00Z", "issue": {"number": 10},
         "milestone": {"title": "v1.0"}},
        {"id": 2, "event": "closed", "created_at": "2024-01-20T09:00:00Z", "issue": {"number": 10}},
        {"id": 3, "event": "milestoned", "created_at": "2024-01-06T09:00:00Z", "issue": {"number": 11},
         "milestone": {"title": "v1.0"}},
        {"id": 4, "event": "demilestoned", "created_at": "2024-01-31T09:00:00Z", "issue": {"number": 11},
         "milestone": {"title": "v1.0"}},
        {"id": 5, "event": "milestoned", "created_at": "2024-01-31T09:01:00Z", "issue": {"number": 11},
         "milestone": {"title": "v1.1"}},
        {"id": 6, "event": "labeled", "created_at": "2024-01-31T09:01:00Z", "issue": {"number": 11}},
        {"id": 7, "event": "closed", "created_at": "2024-01-31T09:01:00Z", "issue": {"number": 12}},
    ],
}


def test_github_milestones_issues_and_events(tmp_path, settings):
    for name, rows in GITHUB.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(rows))
    report = run_import("github", tmp_path, tmp_path / "out", settings)
    t = read_tables(tmp_path / "out")
    ms = t.milestones.set_index("name")
    assert ms.loc["v1.0", "due_at"] == pd.Timestamp("2024-02-01 23:59:59.999999", tz="UTC")
    assert ms.loc["v1.0", "completed_at"] == pd.Timestamp("2024-02-03 12:00", tz="UTC")
    moves = t.events[(t.events["ticket_id"] == "acme/widget#11") & (t.events["field"] == "milestone")].sort_values("at")
    v10, v11 = ms.loc["v1.0", "milestone_id"], ms.loc["v1.1", "milestone_id"]
    assert list(zip(moves["from_value"].fillna(""), moves["to_value"].fillna(""))) == [("", v10), (v10, ""), ("", v11)]
    assert report.ignored["events"] == 1 and report.accepted["tickets"] == 2
    rej = pd.read_csv(tmp_path / "out" / "rejections.csv")
    assert {"issue 12"} == set(rej.loc[rej["kind"] == "tickets", "record"])
    assert "belongs to a rejected issue" in rej.loc[rej["kind"] == "events", "reason"].iloc[0]
    report.check_reconciled()


def test_canonical_csv_rejects_bad_rows(tmp_path, settings, small_history):
    src = tmp_path / "src"
    src.mkdir()
    ms = small_history.milestones.head(5).copy()
    tk = small_history.tickets.head(20).copy()
    ev = small_history.events[small_history.events["ticket_id"].isin(tk["ticket_id"])].copy()
    ms.to_csv(src / "milestones.csv", index=False)
    tk = tk.astype(object)
    tk.loc[tk.index[1], "status"] = "sleeping"
    tk.loc[tk.index[2], "created_at"] = "2024-01-01 10:00:00"  # no offset
    tk.loc[tk.index[3], "project"] = None
    tk = pd.concat([tk, tk.iloc[[0]]])
    tk.to_csv(src / "tickets.csv", index=False)
    ev.sample(frac=1, random_state=0).to_parquet(src / "events.parquet")  # out of order: sorted on import
    report = run_import("canonical", src, tmp_path / "out", settings)
    rej = pd.read_csv(tmp_path / "out" / "rejections.csv")
    by_row = {r.record: (r.field, r.reason) for r in rej.itertuples() if r.kind == "tickets"}
    assert by_row["row 3"] == ("status", "'sleeping' not one of ['todo', 'in_progress', 'blocked', 'done']")
    assert by_row["row 4"][0] == "created_at" and "naive timestamp" in by_row["row 4"][1]
    assert by_row["row 5"] == ("project", "required value missing")
    assert "duplicate key" in by_row["row 22"][1]
    t = read_tables(tmp_path / "out")
    assert len(t.tickets) == 21 - 4 and t.events["at"].is_monotonic_increasing
    orphans = rej[rej["kind"] == "events"]  # the events of the rejected tickets go with them
    assert len(orphans) and orphans["reason"].str.endswith("not in tickets").all()
    assert set(t.events["ticket_id"].dropna()) <= set(t.tickets["ticket_id"])
    report.check_reconciled()


def test_canonical_missing_table_is_an_error(tmp_path, settings):
    (tmp_path / "src").mkdir()
    with pytest.raises(ImportError_, match="missing milestones.csv or milestones.parquet"):
        run_import("canonical", tmp_path / "src", tmp_path / "out", settings)
    assert not (tmp_path / "out").exists()


def test_rejections_csv_cells_never_run_as_spreadsheet_formulas():
    import csv
    import io

    from slipcast.ingest.importers.report import ImportReport

    report = ImportReport(source="x")
    report.reject("tickets", "=HYPERLINK(\"http://evil\")", "+1+2", "-", "@SUM(A1)")
    report.reject("tickets", "f.json", "DS-1", "status", "unknown status 'Done'")
    rows = list(csv.DictReader(io.StringIO(report.rejections_csv())))
    assert rows[0] == {"kind": "tickets", "file": "'=HYPERLINK(\"http://evil\")", "record": "'+1+2", "field": "-",
                       "reason": "'@SUM(A1)"}
    assert rows[1] == {"kind": "tickets", "file": "f.json", "record": "DS-1", "field": "status",
                       "reason": "unknown status 'Done'"}
