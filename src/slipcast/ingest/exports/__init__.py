"""Canonical tables rendered as the files real trackers export, with their quirks.

Tests, benchmarks and the fake tracker servers use these to feed the importers histories shaped
like the trackers Slipcast has not seen (docs/architecture.md, "Any tracker").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from slipcast.ingest.exports.quirks import APPLIES, QUIRKS, check_quirks
from slipcast.ingest.tables import Tables

FORMATS = tuple(APPLIES)


def render(tables: Tables, fmt: str, folder: Path, quirks=()):
    """Write ``tables`` into ``folder`` as a ``fmt`` export (jira-json, jira-csv, github, azure-devops,
    azure-devops-csv, linear or linear-csv) with ``quirks``; returns the ids the rendering gave (what an
    import of it gives back)."""
    from slipcast.ingest.exports import azure_devops, github, jira_csv, jira_json, linear

    chosen = check_quirks(quirks, fmt) & APPLIES[fmt]
    writers: dict[str, Callable[[Tables, Path, frozenset[str]], object]] = {
        "jira-json": jira_json.render_jira_json, "jira-csv": jira_csv.render_jira_csv,
        "github": github.render_github, "azure-devops": azure_devops.render_azure_devops,
        "azure-devops-csv": azure_devops.render_azure_devops_csv, "linear": linear.render_linear,
        "linear-csv": linear.render_linear_csv}
    writer = writers[fmt]
    return writer(tables, Path(folder), chosen)


__all__ = ["FORMATS", "QUIRKS", "render"]
