import json

import pandas as pd
import pytest

from slipcast.ingest.importers import ImportError_, run_import
from slipcast.ingest.importers.vocab import link_kind_from_words
from slipcast.ingest.tables import read_tables
from tests.helpers import jira_issue


def _write(path, payload):
    path.write_text(json.dumps(payload))
    return path


def _rejections(out):
    return pd.read_csv(out / "rejections.csv")


def test_single_issue_becomes_canonical_rows(tmp_path, settings):
    _write(tmp_path / "DS-1000_CL.json", jira_issue())
    report = run_import("jira-json", tmp_path / "DS-1000_CL.json", tmp_path / "out", settings)
    t = read_tables(tmp_path / "out")
    assert report.accepted["tickets"] == 1
    ticket = t.tickets.iloc[0]
    assert (ticket.status, ticket.story_points, ticket.assignee) == ("done", 3.0, "kshepherd")
    release = t.milestones.set_index("milestone_id").loc["jira-version-10343"]
    assert release.kind == "release"
    assert release.due_at == pd.Timestamp("2011-11-04 23:59:59.999999", tz="UTC")
    ev = t.events
    status = ev[ev.field == "status"].sort_values("at")
    # initial state from the changelog's first 'from', then each change
    assert list(status.to_value) == ["todo", "todo", "done"]
    points = ev[ev.field == "story_points"].sort_values("at")
    assert list(points.to_value) == ["2.0", "3.0"]
    # the fix version was added by the changelog, not present at creation
    joins = ev[(ev.field == "milestone")]
    assert list(joins["at"]) == [pd.Timestamp("2011-08-19T03:45:30.551", tz="UTC")]
    links = set(map(tuple, t.links[["from_ticket", "to_ticket", "kind"]].values))
    assert links == {("DS-1000", "DS-999", "depends_on"), ("DS-1000", "DS-1001", "parent")}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["records"]["events"] == {"read": 6, "accepted": 5, "ignored": 1, "rejected": 0}


def test_search_pages_and_link_seen_from_both_ends(tmp_path, settings):
    a = jira_issue("DS-1")
    b = jira_issue("DS-999", issuelinks=[{"id": "1", "type": {"name": "Dependency"}, "inwardIssue": {"key": "DS-1"}}],
                   subtasks=[])
    _write(tmp_path / "page1.json", {"startAt": 0, "total": 2, "issues": [a]})
    _write(tmp_path / "page2.json", {"startAt": 1, "total": 2, "issues": [b]})
    report = run_import("jira-json", tmp_path, tmp_path / "out", settings)
    t = read_tables(tmp_path / "out")
    assert report.accepted["tickets"] == 2
    deps = t.links[t.links.kind == "depends_on"]
    assert list(map(tuple, deps[["from_ticket", "to_ticket"]].values)) == [("DS-1", "DS-999")]
    assert report.ignored["links"] == 1


def test_bad_records_are_rejected_with_file_record_field_and_reason(tmp_path, settings):
    src = tmp_path / "src"
    src.mkdir()
    _write(src / "good.json", jira_issue("DS-1"))
    (src / "truncated.json").write_text(json.dumps(jira_issue("DS-2"))[:500])
    (src / "empty.json").write_text("  \n")
    _write(src / "status.json", jira_issue("DS-3", status={"name": "Pondering"}))
    _write(src / "nokey.json", {k: v for k, v in jira_issue("DS-4").items() if k != "key"})
    _write(src / "naive.json", jira_issue("DS-5", created="2011-08-19T03:34:46.761"))
    _write(src / "dup.json", jira_issue("DS-1"))
    link = jira_issue("DS-6", issuelinks=[{"id": "9", "type": {"name": "Telepathy"}, "outwardIssue": {"key": "DS-1"}}])
    _write(src / "link.json", link)
    _write(src / "other.json", {"hello": "world"})
    report = run_import("jira-json", src, tmp_path / "out", settings)
    rej = _rejections(tmp_path / "out")
    by_file = {r.file.split("/")[-1]: r for r in rej.itertuples()}
    assert "invalid or truncated JSON" in by_file["truncated.json"].reason
    assert by_file["truncated.json"].field.startswith("line 1 column")
    assert by_file["empty.json"].reason == "empty file"
    assert "status.json" not in by_file  # a status nothing places is read as in progress, with a warning
    assert any("'Pondering'" in w and "in_progress" in w for w in report.warnings)
    assert by_file["nokey.json"].field == "key"
    assert by_file["naive.json"].field == "created" and "naive timestamp" in by_file["naive.json"].reason
    assert report.ignored["tickets"] == 1 and any("repeat an issue" in w for w in report.warnings)  # dup.json
    assert "link.json" not in by_file  # a link type nothing places is kept as relates, with a warning
    assert any("'Telepathy'" in w and "kept as relates" in w for w in report.warnings)
    links = read_tables(tmp_path / "out").links
    assert links[(links["from_ticket"] == "DS-6") & (links["to_ticket"] == "DS-1")]["kind"].tolist() == ["relates"]
    assert "not a Jira issue" in by_file["other.json"].reason
    # every ticket read is accounted for
    assert report.read["tickets"] == report.accepted["tickets"] + report.ignored["tickets"] + report.rejected()["tickets"]
    assert report.accepted["tickets"] == 3  # DS-1, DS-3 and DS-6
    # changelog items of rejected issues are rejected with them, not lost
    assert report.read["events"] == report.accepted["events"] + report.ignored["events"] + report.rejected()["events"]


def test_out_of_order_changelog_is_sorted_and_reported(tmp_path, settings):
    issue = jira_issue()
    issue["changelog"]["histories"].reverse()
    _write(tmp_path / "i.json", issue)
    report = run_import("jira-json", tmp_path / "i.json", tmp_path / "out", settings)
    assert any("out of time order" in w for w in report.warnings)
    status = read_tables(tmp_path / "out").events.query("field == 'status'").sort_values("at")
    assert list(status.to_value) == ["todo", "todo", "done"]


def test_change_before_creation_is_rejected(tmp_path, settings):
    issue = jira_issue()
    issue["changelog"]["histories"][0]["created"] = "2010-01-01T00:00:00.000+0000"
    _write(tmp_path / "i.json", issue)
    run_import("jira-json", tmp_path / "i.json", tmp_path / "out", settings)
    rej = _rejections(tmp_path / "out")
    assert set(rej.reason) == {"change dated before the issue was created"}
    assert len(rej) == 2


def test_wrong_encoding_is_decoded_with_fallback_and_reported(tmp_path, settings):
    issue = jira_issue(summary="caf\u00e9 \u2013 r\u00e9sum\u00e9")
    (tmp_path / "i.json").write_bytes(json.dumps(issue, ensure_ascii=False).encode("cp1252"))
    report = run_import("jira-json", tmp_path / "i.json", tmp_path / "out", settings)
    assert report.accepted["tickets"] == 1
    assert any("not UTF-8" in w and "cp1252" in w for w in report.warnings)


def test_nothing_importable_fails_without_output(tmp_path, settings):
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ImportError_, match="nothing could be imported.*bad.json"):
        run_import("jira-json", tmp_path / "bad.json", tmp_path / "out", settings)
    assert not (tmp_path / "out").exists()


def test_sprints_become_sprint_milestones(tmp_path, settings):
    sprint = ("com.atlassian.greenhopper.service.sprint.Sprint@41b017c6[rapidViewId=<null>,state=CLOSED,"
              "name=DuraCloud 2.4, part 1,startDate=2013-06-12T13:43:27.425Z,endDate=2013-07-26T13:43:27.425Z,"
              "completeDate=2013-07-27T10:00:00.000Z,id=3]")
    issue = jira_issue(customfield_10290=[sprint], fixVersions=[])
    issue["changelog"]["histories"].append(
        {"id": "4", "created": "2011-08-21T00:00:00.000+0000",
         "items": [{"field": "Sprint", "from": None, "fromString": None, "to": "3", "toString": "DuraCloud 2.4"}]})
    _write(tmp_path / "i.json", issue)
    run_import("jira-json", tmp_path / "i.json", tmp_path / "out", settings)
    t = read_tables(tmp_path / "out")
    s = t.milestones.set_index("milestone_id").loc["jira-sprint-3"]
    assert (s.kind, s["name"]) == ("sprint", "DuraCloud 2.4, part 1")
    assert s.due_at == pd.Timestamp("2013-07-26T13:43:27.425", tz="UTC")
    assert t.tickets.iloc[0].milestone_id == "jira-sprint-3"


def test_duraspace_imports_completely(tmp_path, settings, duraspace_dir):
    report = run_import("jira-json", duraspace_dir, tmp_path / "out", settings)
    files = len(list(duraspace_dir.glob("*.json")))
    print(report.format())
    assert report.read["tickets"] == files == 3036
    assert report.accepted["tickets"] == 3036
    report.check_reconciled()
    t = read_tables(tmp_path / "out")
    assert t.tickets["project"].nunique() == 18
    assert {"release", "sprint"} <= set(t.milestones["kind"])
    assert len(t.events) > 20000 and len(t.links) > 500


def test_statuses_and_link_types_are_read_from_what_jira_says_of_them(tmp_path, settings):
    """A custom status placed by its statusCategory (even when a changelog names it before any
    issue carrying it is read); link kinds from the type's own descriptions."""
    src = tmp_path / "src"
    src.mkdir()
    early = jira_issue("DS-1", status={"name": "Closed", "statusCategory": {"key": "done"}})
    early["changelog"]["histories"][2]["items"][0].update(fromString="Patch Available")  # named before it is defined
    late = jira_issue("DS-2", status={"name": "Patch Available", "statusCategory": {"key": "indeterminate"}},
                      issuelinks=[{"id": "5", "type": {"name": "Incorporates", "outward": "incorporates",
                                                       "inward": "is incorporated by"}, "outwardIssue": {"key": "DS-1"}},
                                  {"id": "6", "type": {"name": "dependent", "outward": "depends on",
                                                       "inward": "is depended on by"}, "outwardIssue": {"key": "DS-3"}}],
                      resolutiondate=None)
    late["changelog"]["histories"] = late["changelog"]["histories"][:1]
    _write(src / "a.json", early)
    _write(src / "b.json", late)
    report = run_import("jira-json", src, tmp_path / "out", settings)
    assert not report.rejections, report.rejections
    t = read_tables(tmp_path / "out")
    assert t.tickets.set_index("ticket_id").loc["DS-2", "status"] == "in_progress"
    moves = t.events[(t.events["ticket_id"] == "DS-1") & (t.events["field"] == "status")]
    assert "in_progress" in set(moves["from_value"])  # Patch Available -> Closed, read, not rejected
    kinds = dict(zip(t.links["to_ticket"], t.links["kind"]))
    assert kinds["DS-3"] == "depends_on" and kinds.get("DS-2", kinds.get("DS-1")) == "parent"


def test_an_epic_in_fields_parent_is_a_parent_link_dated_by_the_childs_changelog(tmp_path, settings):
    """Jira Cloud puts an epic in its child's fields.parent and logs the move in the child's
    changelog (IssueParentAssociation: the parent's id in to, its key in toString)."""
    child = jira_issue("DS-7", subtasks=[], issuelinks=[],
                       parent={"id": "10044", "key": "DS-3", "fields": {"issuetype": {"name": "Epic"}}})
    child["changelog"]["histories"].append(
        {"id": "9", "created": "2011-09-01T12:00:00.000+0000",
         "items": [{"field": "IssueParentAssociation", "fieldtype": "jira", "from": None, "fromString": None,
                    "to": "10044", "toString": "DS-3"}]})
    _write(tmp_path / "a.json", child)
    report = run_import("jira-json", tmp_path / "a.json", tmp_path / "out", settings)
    report.check_reconciled()
    links = read_tables(tmp_path / "out").links
    assert links[["from_ticket", "to_ticket", "kind"]].values.tolist() == [["DS-3", "DS-7", "parent"]]
    assert links["created_at"].tolist() == [pd.Timestamp("2011-09-01T12:00:00", tz="UTC")]


GANTT = {  # the link types a Gantt app (BigPicture) adds to a Jira site, as its export lists them
    "finish-start": {"name": "Gantt: finish-start", "outward": "has to be done before", "inward": "has to be done after"},
    "finish-finish": {"name": "Gantt: finish-finish", "outward": "has to be finished together with",
                      "inward": "has to be finished together with"},
    "start-start": {"name": "Gantt: start-start", "outward": "has to be started together with",
                    "inward": "has to be started together with"},
    "start-finish": {"name": "Gantt: start-finish", "outward": "earliest end is start of",
                     "inward": "start is earliest end of"},
}


def test_gantt_links_that_hold_back_a_finish_are_dependencies_on_the_issue_done_first(tmp_path, settings):
    """DS-1 has to be done before DS-2 starts (finish-start) and before DS-5 finishes (finish-finish,
    written on DS-5 as an inward link): DS-1 blocks both, so DS-2 and DS-5 wait on it. Links that tie
    only starts (start-start, start-finish) hold back no completion: relates, placed without a warning."""
    first = jira_issue("DS-1", subtasks=[], issuelinks=[
        {"id": "1", "type": GANTT["finish-start"], "outwardIssue": {"key": "DS-2"}},
        {"id": "2", "type": GANTT["start-start"], "outwardIssue": {"key": "DS-3"}},
        {"id": "3", "type": GANTT["start-finish"], "outwardIssue": {"key": "DS-4"}}])
    last = jira_issue("DS-5", subtasks=[], issuelinks=[
        {"id": "4", "type": GANTT["finish-finish"], "inwardIssue": {"key": "DS-1"}}])
    _write(tmp_path / "a.json", {"issues": [first, last]})
    report = run_import("jira-json", tmp_path / "a.json", tmp_path / "out", settings)
    assert not report.rejections
    links = set(map(tuple, read_tables(tmp_path / "out").links[["from_ticket", "to_ticket", "kind"]].values))
    assert links == {("DS-1", "DS-2", "blocks"), ("DS-1", "DS-3", "relates"), ("DS-1", "DS-4", "relates"),
                     ("DS-1", "DS-5", "blocks")}
    assert report.mappings["link"] == {"Gantt: finish-start": "blocks", "Gantt: start-start": "relates",
                                       "Gantt: start-finish": "relates", "Gantt: finish-finish": "blocks"}
    assert not [w for w in report.warnings if "link type" in w]


@pytest.mark.parametrize("name, outward, inward, kind", [
    ("Gantt: finish-start", "has to be done before", "has to be done after", "blocks"),
    ("Gantt: End to Start Link", None, None, "blocks"),
    ("finish-finish [GANTT]", None, None, "blocks"),
    ("Finish-to-Finish link (WBSGantt)", "Linked one can't finish until this issue is done.",
     "can't finish until the linked issue is done.", "blocks"),
    ("Sequence", "has to be done after", None, "depends_on"),  # the outward issue is the later one
    ("Gantt: start-finish", None, None, "relates"),  # "finish" in its name, yet it ties a start
    ("start-finish [GANTT]", "earliest end is start of", "start is earliest end of", "relates"),
    ("Gantt: Start to End Link", "earliest end isstartof", "start isearliestend of", "relates"),
    ("Gantt Start to Start", "has to be started together with", "has to be started together with", "relates"),
    ("Blocks", "blocks", "is blocked by", "blocks"),
    ("Telepathy", None, None, None),
])
def test_link_kinds_from_a_link_types_own_words(name, outward, inward, kind):
    assert link_kind_from_words(outward, inward, name) == kind


def test_a_status_met_only_in_changelogs_is_read_as_in_progress_with_a_warning(tmp_path, settings):
    """Apache's "Patch Available" is named only by changelogs: no issue carries it and no list
    places it. Jira puts a custom status in "In Progress"; so does the import, says so, and
    rejects none of its events."""
    src = tmp_path / "src"
    src.mkdir()
    issue = jira_issue("DS-1", status={"name": "Closed", "statusCategory": {"key": "done"}})
    issue["changelog"]["histories"][2]["items"][0].update(fromString="Patch Available")
    _write(src / "a.json", issue)
    report = run_import("jira-json", src, tmp_path / "out", settings)
    assert not report.rejections, report.rejections
    moves = read_tables(tmp_path / "out").events.query("field == 'status'")
    assert "in_progress" in set(moves["from_value"])
    assert report.mappings["status"]["Patch Available"] == "in_progress"  # shown in doctor's mappings
    assert any("'Patch Available'" in w and "in_progress" in w for w in report.warnings)


def test_a_status_list_from_the_api_places_statuses_no_issue_carries(tmp_path, settings):
    src = tmp_path / "src"
    src.mkdir()
    issue = jira_issue("DS-1", status={"name": "Closed"})
    issue["changelog"]["histories"][2]["items"][0].update(fromString="Awaiting Review")
    _write(src / "issue.json", issue)
    _write(src / "status.json", [{"name": "Awaiting Review", "statusCategory": {"key": "indeterminate"}}])
    report = run_import("jira-json", src, tmp_path / "out", settings)
    assert not report.rejections and report.accepted["files"] == 1


def test_of_one_issue_in_several_files_the_copy_with_the_history_is_kept(tmp_path, settings):
    """The first file by name holds the issue without its changelog: the copy with it wins."""
    src = tmp_path / "src"
    src.mkdir()
    bare = jira_issue("DS-1")
    bare.pop("changelog")
    _write(src / "a-issue.json", bare)
    _write(src / "b-issue-with-changelog.json", jira_issue("DS-1"))
    report = run_import("jira-json", src, tmp_path / "out", settings)
    assert not report.rejections and report.ignored["tickets"] == 1 and report.accepted["tickets"] == 1
    ev = read_tables(tmp_path / "out").events
    status = ev[(ev["ticket_id"] == "DS-1") & (ev["field"] == "status")].sort_values("at")
    assert status["to_value"].tolist()[0] != "done"  # not done from the moment it was created
    assert status["to_value"].tolist()[-1] == "done"


def test_versions_without_start_dates_start_when_an_issue_joined_them(tmp_path, settings):
    """No version carries a start date and one is known only from the changelog: the start
    column holds no time at all until filled (once a pandas TypeError)."""
    issue = jira_issue("DS-1", fixVersions=[{"id": "1", "name": "v1"}])
    issue["changelog"]["histories"][0]["items"][1].update(to="2", toString="v2")
    _write(tmp_path / "i.json", issue)
    run_import("jira-json", tmp_path / "i.json", tmp_path / "out", settings)
    ms = read_tables(tmp_path / "out").milestones.set_index("milestone_id")
    assert ms.loc["jira-version-2", "start_at"] == pd.Timestamp("2011-08-19T03:45:30.551Z")
    assert ms.loc["jira-version-1", "start_at"] == pd.Timestamp("2011-08-19T03:34:46.761Z")
