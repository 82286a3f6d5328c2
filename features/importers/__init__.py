"""Importers: tracker exports in, canonical tables out, every record accounted for."""

from pathlib import Path

from slipcast.features.importers.report import ImportError_, ImportReport
from slipcast.features.tables import check_destination

FORMATS = ("jira-json", "jira-csv", "github", "canonical")


def run_import(fmt: str, src, out, settings, force: bool = False, **options) -> ImportReport:
    """Import ``src`` in format ``fmt`` to the folder ``out``; return the reconciled report.

    The destination is checked before anything is read (``features.tables.check_destination``):
    a folder that holds the source, or files that are not Slipcast's (unless ``force``), is refused.
    """
    check_destination(Path(out), (Path(src),), force)
    if fmt == "jira-json":
        from slipcast.features.importers.jira_json import import_jira_json as importer
    elif fmt == "jira-csv":
        from slipcast.features.importers.jira_csv import import_jira_csv as importer
    elif fmt == "github":
        from slipcast.features.importers.github import import_github as importer
    elif fmt == "canonical":
        from slipcast.features.importers.canonical import import_canonical as importer
    else:
        raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")
    return importer(src, out, settings, force=force, **options)


__all__ = ["FORMATS", "ImportReport", "ImportError_", "run_import"]
