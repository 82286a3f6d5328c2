"""Importers: tracker exports in, canonical tables out, every record accounted for."""

from collections.abc import Callable
from importlib import import_module
from pathlib import Path

from slipcast.core.settings import Settings
from slipcast.ingest.importers.report import ImportError_, ImportReport
from slipcast.ingest.tables import check_destination

FORMATS = {  # format -> its importer, "module:function"
    "jira-json": "slipcast.ingest.importers.jira_json:import_jira_json",
    "jira-csv": "slipcast.ingest.importers.jira_csv:import_jira_csv",
    "github": "slipcast.ingest.importers.github:import_github",
    "azure-devops": "slipcast.ingest.importers.azure_devops:import_azure_devops",
    "azure-devops-csv": "slipcast.ingest.importers.azure_devops_csv:import_azure_devops_csv",
    "linear": "slipcast.ingest.importers.linear:import_linear",
    "linear-csv": "slipcast.ingest.importers.linear_csv:import_linear_csv",
    "canonical": "slipcast.ingest.importers.canonical:import_canonical",
}


def run_import(fmt: str, src, out, settings: Settings, force: bool = False, **options) -> ImportReport:
    """Import ``src`` in format ``fmt`` to the folder ``out``; return the reconciled report.

    The destination is checked before anything is read (``ingest.tables.check_destination``):
    a folder that holds the source, or files that are not Slipcast's (unless ``force``), is refused.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {list(FORMATS)}")
    check_destination(Path(out), (Path(src),), force)
    module, function = FORMATS[fmt].split(":")
    importer: Callable[..., ImportReport] = getattr(import_module(module), function)  # loaded when used
    return importer(src, out, settings, force=force, **options)


__all__ = ["FORMATS", "ImportReport", "ImportError_", "run_import"]
