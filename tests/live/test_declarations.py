"""The API's declarations (``live.declarations``): kept in one file under the work folder,
replaced whole, changed by one worker at a time, and a broken file named, not guessed at."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from slipcast.core.settings import DependencyDeclaration, ProgramDeclaration
from slipcast.live.declarations import (
    Declarations,
    DeclarationsError,
    change_declarations,
    declarations_path,
    read_declarations,
)


@pytest.fixture
def settings(settings, tmp_path):
    return settings.model_copy(update={"work_dir": tmp_path / "work"})


def test_none_are_declared_until_a_change_writes_them(settings):
    assert read_declarations(settings) == Declarations() and not declarations_path(settings).exists()
    one = ProgramDeclaration(program_id="a/b", milestones=["M-1", "M-2"])
    changed = change_declarations(settings, lambda d: d.with_program(one))
    assert read_declarations(settings) == changed and changed.program("a/b") == one
    fingerprint = changed.fingerprint()
    again = change_declarations(settings, lambda d: d.with_program(one.model_copy(update={"name": "B"})))
    assert again.programs == [one.model_copy(update={"name": "B"})] and again.fingerprint() != fingerprint
    gone = change_declarations(settings, lambda d: d.without_program("a/b"))
    assert gone == Declarations() and gone.fingerprint() == Declarations().fingerprint()
    assert sorted(p.name for p in declarations_path(settings).parent.iterdir()) == ["declarations.json", "declarations.lock"]


def test_workers_changing_them_at_once_lose_nothing(settings):
    """Each change reads, changes and replaces the file under a lock: eight at once, each adding
    its own program and dependency, leave all of them."""
    def add(i: int) -> None:
        change_declarations(settings, lambda d: d.with_program(ProgramDeclaration(program_id=f"P{i}", milestones=[
            f"M-{i}"])).model_copy(update={"dependencies": [*d.dependencies, DependencyDeclaration(
                blocker=f"M-{i}", dependent=f"M-{i + 100}")]}))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(add, range(16)))
    kept = read_declarations(settings)
    assert sorted(p.program_id for p in kept.programs) == sorted(f"P{i}" for i in range(16))
    assert len(kept.dependencies) == 16


@pytest.mark.parametrize("content", [b"{not json", b'{"programs": [{"milestones": []}]}', b"\xff\xfe"])
def test_a_broken_file_is_an_error_naming_it(settings, content):
    path = declarations_path(settings)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(DeclarationsError, match=str(path)):
        read_declarations(settings)
    with pytest.raises(DeclarationsError, match="cannot read"):
        change_declarations(settings, lambda d: d)
    assert path.read_bytes() == content  # left as it was, for whoever broke it to mend
