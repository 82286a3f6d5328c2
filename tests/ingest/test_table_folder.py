"""Writing a table folder never loses data: user files, the source, the previous tables."""

import os
import subprocess
import sys

import pytest

from slipcast.core.folders import recover
from slipcast.ingest.importers import run_import
from slipcast.ingest.tables import (
    DestinationError,
    read_tables,
    write_tables,
)


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o777 & ~mask


def test_a_folder_with_other_files_is_refused_and_left_alone(tmp_path, small_history):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    with pytest.raises(DestinationError, match=r"not a Slipcast table folder \(it holds notes.txt\)"):
        write_tables(small_history, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "my notes"


def test_force_replaces_only_the_table_files(tmp_path, small_history):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    (out / "summary.json").write_text("{}")  # a stale import summary: output of ours, replaced
    write_tables(small_history, out, force=True)
    assert sorted(p.name for p in out.iterdir()) == [
        "events.parquet", "links.parquet", "milestones.parquet", "notes.txt", "tickets.parquet"]
    assert (out / "notes.txt").read_text() == "my notes"
    assert read_tables(out).counts() == small_history.counts()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_a_table_folder_is_replaced_whole_with_normal_permissions(tmp_path, small_history):
    out = write_tables(small_history, tmp_path / "t", extra_files={"summary.json": "{}"})
    assert out.stat().st_mode & 0o777 == _umask_mode()
    smaller = type(small_history)(small_history.milestones, small_history.tickets.iloc[:5],
                                  small_history.events.iloc[:0], small_history.links.iloc[:0])
    write_tables(smaller, out)
    assert read_tables(out).counts()["tickets"] == 5
    assert not (out / "summary.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


@pytest.mark.parametrize("where", ["same", "parent"])
def test_an_import_never_writes_over_its_source(tmp_path, where):
    src = tmp_path / "export"
    src.mkdir()
    (src / "issue.json").write_text('{"key": "DS-1", "fields": {"summary": "x"}}')
    out = src if where == "same" else tmp_path
    from slipcast.core.settings import get_settings

    with pytest.raises(DestinationError, match="holds the source"):
        run_import("jira-json", src, out, get_settings(), force=True)
    assert (src / "issue.json").read_text().startswith('{"key": "DS-1"')


def test_the_command_refuses_with_a_message_and_exit_2(tmp_path):
    (tmp_path / "keep.txt").write_text("keep")
    run = subprocess.run([sys.executable, "-m", "slipcast.cli", "generate", "--out", str(tmp_path),
                          "--projects", "1", "--tickets", "50"], capture_output=True, text=True)
    assert run.returncode == 2 and "not a Slipcast table folder" in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_a_killed_write_is_cleaned_up_and_the_previous_tables_come_back(tmp_path, small_history):
    out = write_tables(small_history, tmp_path / "t")
    # the state a kill leaves between moving the old tables aside and renaming the new ones in
    out.rename(tmp_path / ".t.slipcast-old-dead")
    (tmp_path / ".t.slipcast-tmp-dead").mkdir()
    (tmp_path / ".t.slipcast-tmp-dead" / "milestones.parquet").write_bytes(b"half")
    recover(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]
    assert read_tables(out).counts() == small_history.counts()
    # litter beside a folder that survived is removed by the next write
    (tmp_path / ".t.slipcast-tmp-dead").mkdir()
    write_tables(small_history, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]
