"""The project is one package, src/slipcast, with no links; it installs as one `slipcast` name and runs
from a wheel, outside the checkout."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_wheel_holds_one_namespace_and_runs_outside_the_checkout(tmp_path):
    source = tmp_path / "source"  # a copy: setuptools leaves a build/ folder beside what it builds
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                            str(source)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("slipcast-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.startswith("slipcast-")}
    assert top == {"slipcast"}, top  # nothing named features, training, serving... at the top
    for module in ("slipcast/ingest/tables.py", "slipcast/features/pipeline.py", "slipcast/training/run.py",
                   "slipcast/scoring/forecast.py", "slipcast/live/state.py", "slipcast/serving/app.py",
                   "slipcast/evaluation/results.py", "slipcast/core/profiles/local.yaml",
                   "slipcast/monitoring/monitor.py", "slipcast/serving/templates/portfolio.html"):
        assert module in names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = ("import slipcast, slipcast.serving.app, slipcast.core.settings as s; print(slipcast.__file__); "
            "print(s.get_settings().resolve(s.get_settings().models_dir))")
    run = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    where, models = run.stdout.split()
    assert where.startswith(str(target)) and models == str(elsewhere / "models")
    cli = subprocess.run([sys.executable, "-m", "slipcast.cli", "--help"], cwd=elsewhere, env=env,
                         capture_output=True, text=True)
    assert cli.returncode == 0 and "usage: slipcast" in cli.stdout


def test_the_package_is_one_tree_without_links():
    """Every module lives under src/slipcast, and nothing in the checkout's code is a link."""
    links = [p for p in (ROOT / "src").rglob("*") if p.is_symlink()]
    assert not links, links
    stray = [name for name in ("features", "training", "serving", "evaluation", "monitoring", "slipcast")
             if (ROOT / name).exists()]
    assert not stray, stray
