"""Folders replaced whole (the exported champion, canonical table folders): the path names the
old folder or the new one at every moment, never no folder at all. (A reader that opened the
old folder just before the exchange may find it emptied as it is removed: it reads again, as
the live state and the model store do at their next reload.)"""

from __future__ import annotations

import hashlib
import os
import threading

from slipcast.core.folders import new_sibling, recover, swap_in

SWAPS = 300


def _fill(folder, n: int) -> None:
    """A folder like an export: content and, beside it, the hash of that content."""
    content = os.urandom(2048) + str(n).encode()
    (folder / "model.skops").write_bytes(content)
    (folder / "slipcast.json").write_text(hashlib.sha256(content).hexdigest())


def _found(out) -> bool:
    """Whether a reader that looks the folder up by its path finds one."""
    try:
        os.listdir(out)
    except FileNotFoundError:
        return False
    return True


def _whole(out) -> bool:
    recorded = (out / "slipcast.json").read_text()
    return recorded == hashlib.sha256((out / "model.skops").read_bytes()).hexdigest()


def test_a_folder_replaced_again_and_again_is_always_there_whole(tmp_path):
    out = tmp_path / "milestone"
    out.mkdir()
    _fill(out, 0)
    problems: list[str] = []
    reads = 0
    done = threading.Event()

    def reader():
        nonlocal reads
        while not done.is_set():
            reads += 1
            if not _found(out):
                problems.append("no folder at all")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(1, SWAPS + 1):
            recover(out)
            tmp = new_sibling(out)
            _fill(tmp, n)
            swap_in(tmp, out)
    finally:
        done.set()
        thread.join()
    assert reads > SWAPS and problems == [], f"{len(problems)} of {reads} reads: {sorted(set(problems))}"
    assert _whole(out) and [p.name for p in tmp_path.iterdir()] == ["milestone"]  # no sibling left behind
