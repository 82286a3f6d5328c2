"""`slipcast import linear`: bad records are rejected naming file, record and field; the rest imports."""

from __future__ import annotations

import json

import pytest

from slipcast.ingest.importers import run_import
from slipcast.ingest.importers.report import ImportError_
from slipcast.ingest.tables import read_tables


def _issue(key: str, **fields) -> dict:
    issue = {"id": f"id-{key}", "identifier": key, "createdAt": "2026-01-05T09:00:00.000Z",
             "updatedAt": "2026-01-09T09:00:00.000Z", "team": {"key": "ENG"},
             "state": {"name": "In Progress", "type": "started"}, "priority": 2, "estimate": 3,
             "history": {"nodes": [{"id": f"{key}-h1", "createdAt": "2026-01-06T09:00:00.000Z",
                                    "fromState": {"name": "Todo", "type": "unstarted"},
                                    "toState": {"name": "In Progress", "type": "started"}}]}}
    return {**issue, **fields}


def test_bad_records_are_rejected_naming_file_record_and_field(tmp_path, settings):
    src = tmp_path / "export"
    (src / "issues").mkdir(parents=True)
    good = _issue("ENG-1", projectMilestone={"id": "pm1", "name": "Beta", "targetDate": "2026-02-01",
                                             "project": {"id": "p1", "name": "Launch"}},
                  relations={"nodes": [{"type": "blocks", "createdAt": "2026-01-07T00:00:00Z",
                                        "relatedIssue": {"identifier": "ENG-2"}},
                                       {"type": "similar", "relatedIssue": {"identifier": "ENG-3"}}]})
    good["history"]["nodes"].append({"id": "ENG-1-h2", "createdAt": "yesterday-ish", "toEstimate": 5})
    good["history"]["nodes"].append({"id": "ENG-1-h3", "createdAt": "2026-01-08T00:00:00Z", "toTitle": "renamed"})
    records = {"ENG-1": good, "ENG-2": _issue("ENG-2", estimate="lots"),
               "ENG-3": _issue("ENG-3", state={"name": "Limbo", "type": "purgatory"}),
               "ENG-4": _issue("ENG-4", priority=9)}
    for key, issue in records.items():
        (src / "issues" / f"{key}.json").write_text(json.dumps(issue))
    (src / "notes.json").write_text(json.dumps({"hello": "world"}))
    report = run_import("linear", src, tmp_path / "tables", settings)
    report.check_reconciled()
    why = {(r["record"], r["field"]): r["reason"] for r in report.rejections}
    assert ("ENG-2", "estimate") in why and "number" in why[("ENG-2", "estimate")]
    assert ("ENG-3", "state.name") in why and "purgatory" in why[("ENG-3", "state.name")]
    assert ("ENG-4", "priority") in why
    assert ("ENG-1 history ENG-1-h2", "createdAt") in why
    assert any(r["field"] == "-" and "belongs to a rejected issue" in r["reason"] for r in report.rejections)
    assert any(r["kind"] == "files" and r["file"].endswith("notes.json") for r in report.rejections)
    assert report.accepted["tickets"] == 1 and report.ignored["events"] == 1 and report.ignored["links"] == 1
    assert any("project milestone" in w for w in report.warnings)
    tables = read_tables(tmp_path / "tables")
    (ticket,) = tables.tickets.itertuples()
    assert ticket.status == "in_progress" and ticket.priority == "High" and ticket.story_points == 3.0
    assert ticket.milestone_id == "linear-milestone-pm1"
    assert tables.milestones.set_index("milestone_id").loc["linear-milestone-pm1", "name"] == "Launch: Beta"
    assert list(tables.links[["from_ticket", "to_ticket", "kind"]].itertuples(index=False, name=None)) == [
        ("ENG-1", "ENG-2", "blocks")]


def test_a_folder_without_linear_records_imports_nothing_and_says_why(tmp_path, settings):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "x.json").write_text(json.dumps([{"title": "no identifier"}]))
    with pytest.raises(ImportError_, match="nothing could be imported"):
        run_import("linear", tmp_path / "export", tmp_path / "tables", settings)
