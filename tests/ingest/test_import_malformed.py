"""Malformed records: every one is a rejection naming file, record and field (or, for a file
that cannot be read at all, an error naming the file); never a traceback, never a silent drop."""

import copy
import json

import pytest

from slipcast.ingest.importers import ImportError_, run_import
from tests.helpers import jira_issue

WRONG = {"a string": "x", "a number": 5, "a list": [1], "an object": {"a": 1}, "NaN": float("nan")}


def _jira(tmp_path, settings, mutate):
    issues = [jira_issue("DS-1"), jira_issue("DS-2")]
    mutate(issues[1])
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "i.json").write_text(json.dumps({"issues": issues}))
    return run_import("jira-json", tmp_path / "src", tmp_path / "out", settings)


def _set(path: tuple, value):
    def mutate(issue):
        holder = issue
        for part in path[:-1]:
            holder = holder[part]
        holder[path[-1]] = value
    return mutate


PLACES = {
    "fields.status": ("fields", "status"), "fields.fixVersions": ("fields", "fixVersions"),
    "fields.issuelinks": ("fields", "issuelinks"), "fields.subtasks": ("fields", "subtasks"),
    "fields.priority": ("fields", "priority"), "fields.project": ("fields", "project"),
    "fields.created": ("fields", "created"), "fields": ("fields",), "changelog": ("changelog",),
    "changelog.histories": ("changelog", "histories"), "changelog.histories.0.items": ("changelog", "histories", 0, "items"),
    "fields.fixVersions.0": ("fields", "fixVersions", 0), "fields.issuelinks.0.type": ("fields", "issuelinks", 0, "type"),
}


@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("wrong", list(WRONG))
def test_a_wrongly_typed_jira_field_rejects_its_issue_naming_the_field(tmp_path, settings, place, wrong):
    value = WRONG[wrong]
    if place == "fields.created" and isinstance(value, str):
        value = "yesterday"
    if place in ("fields.project",) and isinstance(value, dict):
        value = {"key": 5}
    if place in ("fields.fixVersions.0",) and isinstance(value, dict):
        value = {"name": "no id"}  # the export that once aborted the whole import with "error: 'id'"
    if place in ("fields.issuelinks.0.type", "fields.status") and isinstance(value, dict):
        value = {"name": 5}
    report = _jira(tmp_path, settings, _set(PLACES[place], value))
    if place in ("fields.priority", "changelog") and isinstance(value, dict):
        assert report.accepted["tickets"] == 2  # an object with unknown keys only: nothing read from it
        return
    assert report.accepted["tickets"] == 1
    (rejection,) = [r for r in report.rejections if r["kind"] == "tickets"]
    named = [part for part in PLACES[place] if isinstance(part, str)][-1]
    if place == "fields" and isinstance(value, dict):
        named = "created"  # fields of the right shape, without the one required value
    assert rejection["record"] == "DS-2" and named in rejection["field"], rejection
    assert rejection["file"].endswith("i.json")


@pytest.mark.parametrize("points", [float("inf"), 1e300, -5, "abc", [3]])
def test_absurd_story_points_are_rejected(tmp_path, settings, points):
    report = _jira(tmp_path, settings, _set(("fields", "customfield_10023"), points))
    (rejection,) = [r for r in report.rejections if r["kind"] == "tickets"]
    assert rejection["field"] == "customfield_10023" and "story points" in rejection["reason"]


@pytest.mark.parametrize("year", ["0001", "9999"])
def test_absurd_years_are_rejected(tmp_path, settings, year):
    report = _jira(tmp_path, settings, _set(("fields", "created"), f"{year}-01-01T00:00:00.000+0000"))
    (rejection,) = [r for r in report.rejections if r["kind"] == "tickets"]
    assert rejection["field"] == "created" and "1900-2200" in rejection["reason"]


def test_json_nested_too_deeply_is_a_file_rejection(tmp_path, settings):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "src" / "ok.json").write_text(json.dumps(jira_issue("DS-1")))
    report = run_import("jira-json", tmp_path / "src", tmp_path / "out", settings)
    (rejection,) = report.rejections
    assert rejection["file"].endswith("deep.json") and "nested too deeply" in rejection["reason"]


MILESTONES = [{"number": 1, "title": "v1", "due_on": "2024-03-01T08:00:00Z", "created_at": "2024-01-01T00:00:00Z"}]
ISSUES = [{"number": 1, "title": "a", "state": "open", "created_at": "2024-01-02T00:00:00Z", "labels": [{"name": "bug"}],
           "assignees": [{"login": "x"}], "milestone": {"number": 1, "title": "v1"}},
          {"number": 2, "title": "b", "state": "closed", "created_at": "2024-01-02T00:00:00Z",
           "closed_at": "2024-01-05T00:00:00Z", "labels": [], "assignees": []}]
EVENTS = [{"id": 1, "event": "milestoned", "created_at": "2024-01-03T00:00:00Z", "issue": {"number": 2},
           "milestone": {"title": "v1"}}]


def _github(tmp_path, settings, issues=ISSUES, events=EVENTS, milestones=MILESTONES):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    for name, payload in (("milestones", milestones), ("issues", issues), ("events", events)):
        (src / f"{name}.json").write_text(json.dumps(payload))
    return run_import("github", src, tmp_path / "out", settings)


def test_github_search_shaped_issues_are_read_not_dropped(tmp_path, settings):
    report = _github(tmp_path, settings, issues={"total_count": 2, "items": ISSUES})
    assert report.accepted["tickets"] == 2 and not report.rejections


def test_a_github_event_for_an_issue_not_in_the_export_is_a_rejection(tmp_path, settings):
    orphan = {"id": 9, "event": "closed", "created_at": "2024-01-04T00:00:00Z", "issue": {"number": 99}}
    report = _github(tmp_path, settings, events=EVENTS + [orphan])
    (rejection,) = report.rejections
    assert rejection["record"] == "event 9" and rejection["field"] == "issue.number" and "99" in rejection["reason"]


@pytest.mark.parametrize("field", ["number", "labels", "assignees", "milestone", "created_at"])
@pytest.mark.parametrize("wrong", list(WRONG))
def test_a_wrongly_typed_github_issue_is_rejected_with_its_events(tmp_path, settings, field, wrong):
    issues = copy.deepcopy(ISSUES)
    issues[1][field] = WRONG[wrong] if not (field == "created_at" and wrong == "a string") else "soon"
    if field == "number" and wrong == "a number":
        issues[1][field] = 1  # a second copy of issue 1: the newer is kept, the other ignored
        report = _github(tmp_path, settings, issues=issues)
        assert report.accepted["tickets"] == 1 and report.ignored["tickets"] == 1
        assert {r["field"] for r in report.rejections} == {"issue.number"}  # issue 2's events: no issue 2 now
        assert any("most recently updated copy" in w for w in report.warnings)
        return
    report = _github(tmp_path, settings, issues=issues)
    if field == "milestone" and wrong == "an object":
        assert report.accepted["tickets"] == 2  # names no milestone: the issue is in none
        return
    tickets = [r for r in report.rejections if r["kind"] == "tickets"]
    assert len(tickets) == 1 and tickets[0]["field"].split(".")[0] == field
    assert report.accepted["tickets"] == 1


def test_a_huge_csv_cell_is_read(tmp_path, settings):
    header = "Summary,Issue key,Issue id,Issue Type,Status,Project key,Created\n"
    (tmp_path / "e.csv").write_text(header + "a" * 200_000 + ",APP-1,1,Bug,Done,APP,12/Mar/24 9:15 AM\n")
    report = run_import("jira-csv", tmp_path / "e.csv", tmp_path / "out", settings)
    assert report.accepted["tickets"] == 1


def test_canonical_events_and_links_must_name_known_tickets(tmp_path, settings):
    src = tmp_path / "src"
    src.mkdir()
    (src / "milestones.csv").write_text("milestone_id,project,name,kind,start_at,due_at,completed_at\n"
                                        "m1,P,M1,release,2024-01-01T00:00:00Z,2024-02-01T00:00:00Z,\n")
    (src / "tickets.csv").write_text("ticket_id,project,type,priority,created_at,resolved_at,story_points,assignee,"
                                     "status,milestone_id\nt1,P,bug,high,2024-01-02T00:00:00Z,,3,al,todo,m1\n"
                                     "t2,P,bug,high,2024-01-02T00:00:00Z,,inf,al,todo,m1\n")
    (src / "events.csv").write_text("ticket_id,milestone_id,at,field,from_value,to_value\n"
                                    "t1,,2024-01-03T00:00:00Z,status,todo,done\nt9,,2024-01-03T00:00:00Z,status,todo,done\n")
    (src / "links.csv").write_text("from_ticket,to_ticket,kind,created_at\nt1,t9,blocks,\n")
    report = run_import("canonical", src, tmp_path / "out", settings)
    reasons = {(r["kind"], r["field"]): r["reason"] for r in report.rejections}
    assert "outside 0-10,000" in reasons[("tickets", "story_points")]
    assert reasons[("events", "ticket_id")] == "names 't9', not in tickets"
    assert reasons[("links", "to_ticket")] == "names 't9', not in tickets"


def test_a_file_that_is_no_export_fails_naming_the_file(tmp_path, settings):
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ImportError_, match="x.json"):
        run_import("jira-json", tmp_path / "x.json", tmp_path / "out", settings)
