"""The ways real tracker exports differ, each a switch a rendering can turn on.

docs/architecture.md ("Any tracker") says why these exist: every one is something a real export
did that an importer tuned on one tracker did not expect. A quirk either loses nothing (the
import must give back the same tables) or loses what the tracker never had; ``tests/
test_exports.py`` checks both, one quirk at a time and in combinations.
"""

from __future__ import annotations

QUIRKS: dict[str, str] = {
    "no_story_points": "the team never estimates: no story points field, no estimate changes",
    "no_priorities": "no priority field and no priority changes",
    "no_sprints": "the team does not use sprints: sprint memberships are not exported",
    "no_fix_versions": "the team does not use versions: release memberships are not exported",
    "no_start_dates": "versions carry no startDate",
    "custom_statuses": "a custom workflow's status names, placed only by their statusCategory",
    "cloud_shapes": "Jira Cloud's shapes: points in customfield_10016, sprints as agile JSON in customfield_10020, "
                    "users by accountId",
    "reverse_changelog": "changelog histories newest first",
    "truncated_changelog": "changelogs embed only their newest histories (total says how many exist)",
    "no_resolution_dates": "done issues without a resolution date",
    "non_utf8": "files in cp1252, with accented names and typographic quotes",
    "duplicated_issues": "issues repeated on two search pages, and a copy of some without their changelog",
    "one_file_per_issue": "one issue per file instead of search pages",
    "local_offsets": "timestamps written in a +02:00 offset instead of UTC",
    "custom_link_types": "a link type the site named itself (Prerequisite: requires / is required by)",
    "issues_only": "only issues: no list of the project's versions, sprints or statuses beside them",
    "effort_points": "Azure DevOps Scrum: estimates in Effort, not Story Points",
    "moved_iterations": "iterations renamed after use: older revisions name them by their old path (same id)",
    "removed_items": "items removed: Azure DevOps work items moved to the Removed state (no work: left out, "
                     "counted); Linear issues canceled instead of done (its canceled state, canceledAt)",
    "nested_iterations": "sprints nested under undated iteration nodes (a node per year)",
    "moved_across_cycles": "unfinished issues of every fourth cycle moved on to the next cycle when it ended",
    "open_cycle": "each team's last cycle has no completion (completedAt null)",
    "undated_project": "every other project has no target date",
}

# What each format can show at all; other quirks do not apply to it.
APPLIES: dict[str, frozenset[str]] = {
    "jira-json": frozenset(QUIRKS) - {"effort_points", "moved_iterations", "removed_items", "nested_iterations",
                                      "moved_across_cycles", "open_cycle", "undated_project"},
    "jira-csv": frozenset({"no_story_points", "no_priorities", "no_sprints", "no_fix_versions", "non_utf8",
                           "no_resolution_dates", "custom_link_types"}),
    "github": frozenset({"no_fix_versions", "reverse_changelog", "non_utf8", "duplicated_issues"}),
    "azure-devops": frozenset({"custom_statuses", "no_story_points", "no_priorities", "effort_points",
                               "moved_iterations", "removed_items", "nested_iterations"}),
    "azure-devops-csv": frozenset({"custom_statuses", "no_story_points", "no_priorities", "effort_points",
                                   "removed_items", "nested_iterations"}),
    "linear": frozenset({"no_story_points", "custom_statuses", "removed_items", "moved_across_cycles", "open_cycle",
                         "undated_project"}),
    "linear-csv": frozenset({"no_story_points", "custom_statuses", "removed_items"}),
}

TRUNCATED_HISTORIES = 4  # histories a truncated changelog keeps (Jira keeps 100 or 40; the simulator's are short)


def check_quirks(names, fmt: str) -> frozenset[str]:
    """The quirks named, checked against QUIRKS; a ValueError names an unknown one."""
    names = frozenset(names)
    unknown = sorted(names - set(QUIRKS))
    if unknown:
        raise ValueError(f"unknown quirks {unknown}: choose from {sorted(QUIRKS)}")
    if fmt not in APPLIES:
        raise ValueError(f"unknown export format {fmt!r}: choose from {sorted(APPLIES)}")
    return names
