"""``live.shared.built_once``: a value built once and read by every worker, and served
unshared where its folder cannot hold it."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from slipcast.live.shared import KEEP, built_once, dump, shared_path


class Builds:
    """A build that pickles ``value`` to the path it is given, counting its calls; where
    ``full`` is a folder, a write into it fails part way, as on a full disk."""

    def __init__(self, value, full: Path | None = None):
        self.value, self.full, self.paths = value, full, []

    def __call__(self, path: Path) -> None:
        self.paths.append(path)
        dump(self.value, path)
        if self.full is not None and path.parent == self.full:
            raise OSError(errno.ENOSPC, "No space left on device")


def test_the_first_call_builds_and_the_next_reads(tmp_path):
    build = Builds({"a": [1, 2]})
    assert built_once(tmp_path, "k", build) == ({"a": [1, 2]}, True)
    assert built_once(tmp_path, "k", Builds("other")) == ({"a": [1, 2]}, False)  # read, not built
    assert len(build.paths) == 1 and shared_path(tmp_path, "k").exists()


def test_only_the_newest_files_are_kept(tmp_path):
    for i in range(KEEP + 2):
        built_once(tmp_path, f"k{i}", Builds(i))
    assert sorted(p.name for p in tmp_path.glob("*.pickle")) == [f"k{i}.pickle" for i in range(2, KEEP + 2)]


def test_a_folder_that_cannot_be_made_builds_unshared(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    build = Builds("value")
    assert built_once(blocked / "states", "k", build) == ("value", True)
    assert not build.paths[0].exists()  # in a temporary folder, gone with it


def test_a_folder_whose_disk_is_full_serves_the_value_unshared(tmp_path, caplog):
    build = Builds("value", full=tmp_path)
    assert built_once(tmp_path, "k", build) == ("value", True)
    assert [p.parent == tmp_path for p in build.paths] == [True, False]  # tried shared, then its own
    assert not list(tmp_path.glob("k.*"))  # no file cut short left behind
    assert "unshared" in caplog.text and "No space left" in caplog.text
    # the disk freed, the next call shares it again
    assert built_once(tmp_path, "k", Builds("value")) == ("value", True) and shared_path(tmp_path, "k").exists()


def test_a_build_that_fails_fails_the_call(tmp_path):
    def broken(path: Path) -> None:
        raise ValueError("the store cannot be read")

    with pytest.raises(ValueError, match="cannot be read"):
        built_once(tmp_path, "k", broken)
    assert not list(tmp_path.glob("k.*"))
