"""The slipcast command: every subcommand has --help; the main path runs from the shell."""

import subprocess
import sys

import pytest

from slipcast.cli import build_parser

SUBCOMMANDS = ["import", "generate", "features", "train", "serve", "eval-real"]


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
    feats = run("features", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "f"))
    assert feats.returncode == 0, feats.stderr
    assert "milestone:" in feats.stdout and (tmp_path / "f" / "milestone.parquet").exists()
    bad = run("import", "jira-json", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"))
    assert bad.returncode == 2 and "no such file or folder" in bad.stderr
