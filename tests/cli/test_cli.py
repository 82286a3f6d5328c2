"""The slipcast command: every subcommand has --help; the main path runs from the shell."""

import subprocess
import sys

import pytest

from slipcast.cli import build_parser
from slipcast.ingest.simulator import SimulationConfig, generate
from slipcast.ingest.tables import fingerprint, read_tables

SUBCOMMANDS = ["import", "generate", "features", "train", "serve", "mcp", "backfill", "monitor", "retrain", "replay",
               "doctor", "eval-real", "sync", "publish"]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help(command):
    out = subprocess.run([sys.executable, "-m", "slipcast.cli", command, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: slipcast " + command in out.stdout


def test_parser_knows_every_subcommand():
    parser = build_parser()
    actions = [a for a in parser._actions if a.dest == "command"][0]
    assert set(actions.choices) == set(SUBCOMMANDS)


def test_generate_then_features_from_the_shell(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "slipcast.cli", *a], capture_output=True, text=True)  # noqa: E731
    gen = run("generate", "--out", str(tmp_path / "d"), "--projects", "2", "--tickets", "300", "--seed", "4")
    assert gen.returncode == 0 and "generated milestones=" in gen.stdout
    assert (read_tables(tmp_path / "d").tickets["type"] == "Epic").any()  # programs, by default
    plain = run("generate", "--out", str(tmp_path / "p"), "--projects", "2", "--tickets", "300", "--seed", "4",
                "--programs-every-days", "0", "--shared-shock", "0")
    assert plain.returncode == 0, plain.stderr
    assert fingerprint(read_tables(tmp_path / "p")) == fingerprint(
        generate(SimulationConfig(projects=2, tickets=300, seed=4, program_every_days=None, shared_shock=0.0)))
    feats = run("features", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "f"))
    assert feats.returncode == 0, feats.stderr
    assert "milestone:" in feats.stdout and (tmp_path / "f" / "milestone.parquet").exists()
    bad = run("import", "jira-json", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"))
    assert bad.returncode == 2 and "no such file or folder" in bad.stderr


def test_doctor_says_what_an_export_supports_and_why_a_forecast_would_be_thin(tmp_path):
    import json

    from tests.helpers import jira_issue

    run = lambda *a: subprocess.run([sys.executable, "-m", "slipcast.cli", *a], capture_output=True, text=True)  # noqa: E731
    issues = [jira_issue(f"DS-{i}", customfield_10023=None, status={"name": "Patch Available",
                                                                  "statusCategory": {"key": "indeterminate"}})
              for i in range(1, 4)]
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "issues.json").write_text(json.dumps({"issues": issues}))
    assert run("import", "jira-json", str(tmp_path / "export"), "--out", str(tmp_path / "small")).returncode == 0
    thin = run("doctor", str(tmp_path / "small"))
    assert thin.returncode == 0, thin.stderr
    assert "story points on 0 % of tickets" in thin.stdout
    assert "'Patch Available' -> in_progress" in thin.stdout
    assert "a forecast from this data will be thin" in thin.stdout and "training needs" in thin.stdout

    gen = run("generate", "--out", str(tmp_path / "sim"), "--projects", "3", "--tickets", "1200", "--seed", "2")
    assert gen.returncode == 0
    fine = run("doctor", str(tmp_path / "sim"))
    assert "nothing stands in the way of training" in fine.stdout, fine.stdout
    assert "programs at the data's end" in fine.stdout and "dependencies between milestones" in fine.stdout


def test_doctor_counts_the_programs_and_dependencies_it_finds_with_cycles_and_external_edges(small_history, settings):
    from slipcast.core.settings import DependencyDeclaration, ProgramDeclaration
    from slipcast.tools.doctor import programs_found

    ms = small_history.milestones.sort_values("milestone_id")
    a, b = ms["milestone_id"].iloc[:2]
    declared = settings.programs.model_copy(update={
        "declared": [ProgramDeclaration(program_id="launch", milestones=[a, b])],
        "dependencies": [DependencyDeclaration(blocker=a, dependent=b), DependencyDeclaration(blocker=b, dependent=a),
                         DependencyDeclaration(blocker="ELSEWHERE-1", dependent=a)]})
    programs, edges = programs_found(small_history, settings.model_copy(update={"programs": declared}))
    found_programs, links = programs_found(small_history, settings)
    epics = int(found_programs.split("): ", 1)[1].split(" ", 1)[0])  # the history's own (its epics)
    assert "programs at the data's end" in programs and f": {epics + 1} (1 declared, {epics} epic)" in programs
    assert "launch (declared, 2 milestones)" in programs
    found = int(links.split(": ", 1)[1].split(" ", 1)[0])
    assert f": {found + 3} (3 declared, {found} links)" in edges
    assert "1 on a blocker outside the store" in edges and f"1 cycle; cycle: {a}, {b}" in edges


def _run_on_a_terminal(args: list[str]) -> str:
    """What a command writes when its standard error is a terminal (a pseudo-terminal here)."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal 100 wide
    child = subprocess.Popen([sys.executable, "-m", "slipcast.cli", *args], stdout=subprocess.DEVNULL,
                             stderr=follower)
    os.close(follower)
    chunks = []
    while True:  # read while it runs: a terminal's output is gone once its last writer closes it
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the command closed the terminal: everything is read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert child.wait(timeout=120) == 0
    return b"".join(chunks).decode(errors="replace")


def test_long_commands_show_progress_on_a_terminal_and_not_with_quiet(tmp_path):
    import subprocess
    import sys

    shown = _run_on_a_terminal(["generate", "--projects", "3", "--tickets", "300", "--out", str(tmp_path / "a")])
    assert "simulating teams" in shown and "/3 [" in shown  # the stage, its count and the time left
    hushed = _run_on_a_terminal(["generate", "--projects", "3", "--tickets", "300", "--out", str(tmp_path / "b"),
                                 "--quiet"])
    assert "simulating teams" not in hushed
    piped = subprocess.run([sys.executable, "-m", "slipcast.cli", "generate", "--projects", "3", "--tickets", "300",
                            "--out", str(tmp_path / "c")], capture_output=True, text=True)
    assert piped.returncode == 0 and "simulating teams" not in piped.stderr  # not a terminal: no bars in logs


@pytest.mark.parametrize("args, named", [
    (["replay", "--data", "d", "--from", "2026-01-01", "--every-days", "0"], "--every-days"),
    (["replay", "--data", "d", "--from", "2026-01-01", "--every-days", "-7"], "--every-days"),
    (["replay", "--data", "d", "--from", "2026-01-01", "--every-days", "nan"], "--every-days"),
    (["generate", "--out", "x", "--projects", "0"], "--projects"),
    (["generate", "--out", "x", "--tickets", "0"], "--tickets"),
    (["generate", "--out", "x", "--tickets", "-5"], "--tickets"),
    (["generate", "--out", "x", "--shared-shock", "1.5"], "--shared-shock"),
    (["generate", "--out", "x", "--shared-shock", "nan"], "--shared-shock"),
    (["generate", "--out", "x", "--programs-every-days", "-1"], "--programs-every-days"),
    (["serve", "--port", "99999"], "--port"),
    (["serve", "--port", "0"], "--port"),
    (["serve", "--port", "-1"], "--port"),
    (["serve", "--workers", "0"], "--workers"),
])
def test_arguments_out_of_range_are_refused_naming_the_argument(args, named, capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(args)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and f"argument {named}:" in err, err


def test_serve_refuses_a_port_it_cannot_bind_with_one_line(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "slipcast.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"slipcast serve: error: cannot listen on 127.0.0.1:{port}"), lines
