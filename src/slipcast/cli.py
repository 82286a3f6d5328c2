"""The ``slipcast`` command: import, sync, generate, features, train, serve, mcp, backfill, publish,
monitor, retrain, replay, doctor, eval-real."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from slipcast.core.progress import quiet
from slipcast.core.settings import get_settings


def _cmd_import(args) -> int:
    from slipcast.ingest.importers import run_import

    settings = get_settings()
    options = {}
    if args.format in ("jira-csv", "azure-devops-csv"):
        options = {"tz": args.tz, "date_format": args.date_format}
    if args.format == "github":
        options = {"project": args.project}
    started = time.perf_counter()
    report = run_import(args.format, Path(args.src), Path(args.out), settings, force=args.force, **options)
    print(report.format())
    print(f"  wrote {args.out} in {time.perf_counter() - started:.1f}s "
          f"(rejections.csv lists {len(report.rejections)} rejected records)")
    return 0


def _cmd_sync(args) -> int:
    from slipcast.core.settings import TrackerSettings
    from slipcast.ingest.connectors.http import ConnectorError
    from slipcast.ingest.connectors.trackers import sync_tracker

    tracker = TrackerSettings(tracker=args.tracker, url=args.url or args.api_url, repo=args.repo, jql=args.jql,
                              flavour=args.flavour, pulls=args.pulls, org=args.org, project=args.project,
                              team=args.team)
    try:
        report = sync_tracker(tracker, Path(args.store), get_settings(), full=args.full, sweep=args.sweep)
    except ConnectorError as exc:
        print(f"slipcast sync: error: {exc}", file=sys.stderr)
        return 2
    print(report.format())
    return 0


def _cmd_generate(args) -> int:
    from slipcast.ingest.simulator import SimulationConfig, generate
    from slipcast.ingest.tables import write_tables

    started = time.perf_counter()
    config = SimulationConfig(projects=args.projects, tickets=args.tickets, seed=args.seed,
                              freeze_from_day=args.freeze_from_day, shared_shock=args.shared_shock,
                              program_every_days=args.programs_every_days or None)
    tables = generate(config)
    out = Path(args.out)
    if args.format != "canonical":
        from slipcast.ingest.exports import render

        if out.exists() and any(out.iterdir()):
            print(f"error: {out} is not empty: an export is written into a new or empty folder", file=sys.stderr)
            return 2
        quirks = [q for q in (args.quirks or "").split(",") if q]
        try:
            render(tables, args.format, out, quirks)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"rendered {len(tables.tickets)} tickets as {args.format} ({', '.join(sorted(quirks)) or 'no quirks'})"
              f" in {time.perf_counter() - started:.1f}s -> {out}")
        return 0
    write_tables(tables, out, force=args.force)
    counts = ", ".join(f"{k}={v}" for k, v in tables.counts().items())
    print(f"generated {counts} in {time.perf_counter() - started:.1f}s -> {args.out}")
    return 0


def _cmd_features(args) -> int:
    from slipcast.features.pipeline import (
        WrittenSet,
        label_counts,
        training_set_fingerprint,
        write_training_set,
        write_training_sets,
    )
    from slipcast.ingest.importers.report import FINAL_STATE_ONLY, export_history
    from slipcast.ingest.tables import read_tables

    settings = get_settings()
    data = Path(args.data) if args.data else settings.resolve(settings.data_dir)
    started = time.perf_counter()
    tables = read_tables(data)
    fp = training_set_fingerprint(tables, settings.features)
    final_state = not (export_history(data) or {}).get("point_in_time", True)
    if final_state:
        print(f"warning: {data}: {FINAL_STATE_ONLY}", file=sys.stderr)
    out = Path(args.out) if args.out else settings.resolve(settings.work_dir) / "features"
    engine = args.engine or settings.features.engine
    if engine == "spark":
        from slipcast.features.spark_engine import build_training_sets_spark

        written = {target: WrittenSet(write_training_set(frame, out, target, fp, final_state), *map(int, label_counts(frame)))
                   for target, frame in build_training_sets_spark(data, settings.features).items()}
    else:
        written = write_training_sets(tables, settings.features, out, fp, final_state)
    for target, w in written.items():
        print(f"{target}: {w.rows} snapshots, {w.labelled} labelled ({w.slipped} slipped), "
              f"{w.rows - w.labelled} still open -> {w.path}")
    print(f"features built in {time.perf_counter() - started:.1f}s (fingerprint {fp})")
    return 0


def _cmd_train(args) -> int:
    from slipcast.training.run import train

    settings = get_settings()
    if args.accept_final_state:
        settings = settings.model_copy(update={"training": settings.training.model_copy(update={
            "accept_final_state": True})})
    result = train(settings, data_dir=Path(args.data) if args.data else None,
                   features_dir=Path(args.features) if args.features else None,
                   targets=args.target, candidates=args.candidate,
                   on_stage=lambda stage, target: print(f"[{target}] {stage}", flush=True))
    for target, r in result.items():
        b = r["backtest"]
        print(f"{target}: chose {r['chosen']} (Brier {b['brier']:.4f}, skill {b['brier_skill']:+.3f}, "
              f"AUC {b['roc_auc']:.3f}, ECE {b['ece']:.3f}); {r['model']} v{r['version']}, run {r['run_id']}")
        print(f"  champion: {'promoted' if r['decision']['promoted'] else 'kept'} - {r['decision']['reason']}")
        print(f"  report: {r['report']}")
        for leak in r["leaks"]:
            print(f"  LEAK AUDIT: {leak['feature']} alone reaches AUC {leak['auc']:.3f}")
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    return 0


def _cmd_serve(args) -> int:
    # through the environment, so every worker process reads them
    given = {"STORE": args.store and _given_store(args.store), "SYNC__TRACKER": args.sync,
             "SYNC__URL": args.sync_url, "SYNC__REPO": args.sync_repo, "SYNC__JQL": args.sync_jql,
             "SYNC__FLAVOUR": args.sync_flavour, "SYNC__PULLS": args.sync_pulls and "true", "SYNC__ORG": args.sync_org,
             "SYNC__PROJECT": args.sync_project, "SYNC__TEAM": args.sync_team,
             "SYNC__INTERVAL_SECONDS": args.sync_interval and str(args.sync_interval),
             "SYNC__RETRAIN_HOUR": args.retrain_hour}
    os.environ.update({f"SLIPCAST_SERVING__{name}": value for name, value in given.items() if value})
    get_settings.cache_clear()
    settings = get_settings()
    from slipcast.scoring.runtime import limit_model_threads

    limit_model_threads(settings)  # before scikit-learn loads (the check below imports it)
    from slipcast.live.autosync import sync_problem

    host, port = args.host or settings.serving.host, args.port or settings.serving.port
    workers = args.workers or settings.serving.workers
    problem = sync_problem(settings) or _bindable(host, port)
    if problem:
        print(f"slipcast serve: error: {problem}", file=sys.stderr)
        return 2
    if workers > 1:
        # gunicorn's master with uvicorn workers: each worker loads and refreshes the champion
        # itself (uvicorn's own --workers loses TCP_NODELAY: docs/deployment.md); metrics are pooled
        # across workers through a shared folder
        import tempfile

        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="slipcast-metrics-"))
        os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "--worker-class", "uvicorn_worker.UvicornWorker",
                                  "--workers", str(workers), "--bind", f"{host}:{port}",
                                  "--graceful-timeout", "10", "slipcast.serving.app:create_app()"])
    import uvicorn

    uvicorn.run("slipcast.serving.app:create_app", factory=True, host=host, port=port, log_level="info")
    return 0


def _cmd_mcp(args) -> int:
    if args.store:
        os.environ["SLIPCAST_SERVING__STORE"] = _given_store(args.store)
        get_settings.cache_clear()
    settings = get_settings()
    if not settings.serving.store:
        print("slipcast mcp: error: no store to answer from (--store DIR, or serving.store)", file=sys.stderr)
        return 2
    from slipcast.scoring.runtime import limit_model_threads
    from slipcast.serving.assistant import run_stdio

    limit_model_threads(settings)
    run_stdio(settings)
    return 0


def _bindable(host: str, port: int) -> str | None:
    """Why the service could not listen on ``host:port`` (taken, not an address here, a privileged
    port), or None: tried as the server will bind it, before any model is loaded."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn and gunicorn bind
            sock.bind(address)
    except OSError as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


STORE_HELP = "canonical tables: a folder, or a URI such as s3://bucket/path (default: settings serving.store)"


def _given_store(text: str) -> str:
    """A ``--store`` argument: a URI as given, a folder relative to where the command runs."""
    return text if "://" in text else str(Path(text).resolve())


def _store(args, settings, purpose: str) -> str | None:
    """The canonical store a command works on (a folder or a URI): ``--store``, else
    ``serving.store``; None (and the reason on standard error) where neither is given."""
    if args.store:
        return _given_store(args.store)
    if settings.serving.store:
        return settings.store_location(settings.serving.store)
    print(f"error: no store to {purpose} (--store DIR, or serving.store)", file=sys.stderr)
    return None


def _now(settings):
    """The time the store commands work as of: ``serving.as_of`` where it fixes the service's
    clock (replays, demos), else now, so backfill, monitor and retrain agree with what is served."""
    from datetime import UTC, datetime

    return settings.serving.as_of or datetime.now(UTC)


def _on_store(args, purpose: str, job, errors: tuple[type[Exception], ...] = (ValueError, FileNotFoundError)) -> int:
    """Run ``job(settings, store, now)`` on the command's store and print its report; 2, with the
    reason on standard error, where there is no store or the job refuses (``errors``)."""
    settings = get_settings()
    store = _store(args, settings, purpose)
    if store is None:
        return 2
    try:
        report = job(settings, store, _now(settings))
    except errors as exc:
        print(f"slipcast {args.command}: error: {exc}", file=sys.stderr)
        return 2
    print(report.format())
    return 0


def _cmd_backfill(args) -> int:
    from slipcast.live.backfill import backfill
    from slipcast.live.declarations import DeclarationsError
    from slipcast.live.ledger import LedgerError

    return _on_store(args, "backfill", backfill,
                     (LookupError, ValueError, FileNotFoundError, LedgerError, DeclarationsError))


def _cmd_publish(args) -> int:
    from pydantic import ValidationError

    from slipcast.core.settings import PublishSettings
    from slipcast.ingest.connectors.http import ConnectorError
    from slipcast.live.declarations import DeclarationsError
    from slipcast.live.ledger import LedgerError
    from slipcast.live.publish import publish_store

    settings = get_settings()
    store = _store(args, settings, "publish")
    if store is None:
        return 2
    configured = settings.serving.publish  # its threshold, page and property key, unless the command says
    given = {"tracker": args.tracker, "url": args.api_url if args.tracker == "github" else args.url,
             "repo": getattr(args, "repo", None), "flavour": getattr(args, "flavour", "cloud")}
    kept = configured.model_dump(include={"min_points", "page_url", "property_key"}) if configured else {}
    chosen = {k: v for k, v in (("min_points", args.min_points), ("page_url", args.page_url)) if v is not None}
    try:
        options = PublishSettings(**{**kept, **given, **chosen})
        report = publish_store(settings, store, _now(settings), options, dry_run=args.dry_run)
    except (ValidationError, ConnectorError, LookupError, LedgerError, DeclarationsError, ValueError,
            FileNotFoundError) as exc:
        print(f"slipcast publish: error: {exc}", file=sys.stderr)
        return 2
    print(report.format())
    return 0


def _cmd_monitor(args) -> int:
    from slipcast.features.pipeline import read_training_set
    from slipcast.live.ledger import LedgerError
    from slipcast.monitoring.monitor import log_to_mlflow, monitor, write_report

    settings = get_settings()
    store = _store(args, settings, "judge the forecasts against")
    if store is None:
        return 2
    features = Path(args.features) if args.features else settings.resolve(settings.work_dir) / "features"
    training = read_training_set(features / "milestone.parquet")[0] if (features / "milestone.parquet").exists() else None
    now = _now(settings)
    try:
        result = monitor(settings, store, now, training)
    except (ValueError, FileNotFoundError, LedgerError) as exc:
        print(f"slipcast monitor: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else settings.resolve(settings.monitoring.report_dir)
    report = write_report(result, out)
    run_id = log_to_mlflow(result, settings, report)
    o = result.overall
    print(f"{result.published} published forecasts, {result.with_outcome} with outcomes"
          + (f": Brier {o['brier']:.4f}, skill {o['brier_skill']:+.3f}, ECE {o['ece']:.3f}" if o else ""))
    for breach in result.breaches:
        print(f"  broken: {breach}")
    print(f"  report: {report}; MLflow run {run_id}")
    return 1 if result.breaches else 0


def _cmd_retrain(args) -> int:
    from slipcast.live.ledger import LedgerError
    from slipcast.monitoring.retrain import retrain

    return _on_store(args, "retrain on", lambda settings, store, now: retrain(settings, store, now, args.if_needed),
                     (ValueError, FileNotFoundError, LedgerError))


def _cmd_replay(args) -> int:
    import pandas as pd

    from slipcast.ingest.tables import read_tables
    from slipcast.monitoring.replay import replay, write_replay

    settings = get_settings()
    tables = read_tables(Path(args.data))
    start = pd.Timestamp(args.start, tz="UTC") if pd.Timestamp(args.start).tzinfo is None else pd.Timestamp(args.start)
    loop = replay(settings, tables, start, args.every_days)
    frozen = replay(settings, tables, start, args.every_days, retrain=False)
    out = Path(args.out) if args.out else settings.resolve(settings.monitoring.report_dir) / "replay"
    print(write_replay(loop, frozen, out), end="")
    print(f"report: {out / 'replay.md'}")
    return 0


def _cmd_doctor(args) -> int:
    from slipcast.tools.doctor import diagnose

    lines, thin = diagnose(Path(args.data), get_settings())
    print("\n".join(lines))
    if thin:
        print("a forecast from this data will be thin:")
        print("\n".join(f"  - {reason}" for reason in thin))
    else:
        print("nothing stands in the way of training")
    return 0


def _cmd_eval_real(args) -> int:
    from slipcast.evaluation.results import eval_real

    settings = get_settings()
    if args.data:
        settings = settings.model_copy(update={"evaluation": settings.evaluation.model_copy(
            update={"shared_data_dir": Path(args.data).resolve()})})
    print(f"wrote {eval_real(settings)}")
    return 0


def _at_least(low: int):
    """An argparse type: a whole number no lower than ``low`` (a count of teams, of workers)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{text} is below {low}")
        return value

    return parse


def _positive(text: str) -> float:
    """An argparse type: a number above 0 (a period in days)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"{text} is not above 0 (and finite)")
    return value


def _share(text: str) -> float:
    """An argparse type: a share, 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a share from 0 to 1")
    return value


def _port(text: str) -> int:
    """An argparse type: a TCP port, 1 to 65535."""
    value = _at_least(1)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text} is above 65535, the highest port")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (each has --help)."""
    from slipcast.core.vocabulary import Tracker
    from slipcast.ingest.connectors.jira import FLAVOURS
    from slipcast.ingest.importers import FORMATS

    parser = argparse.ArgumentParser(prog="slipcast", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("import", help="turn a tracker export into canonical tables")
    p.add_argument("format", choices=list(FORMATS), help="the export's format")
    p.add_argument("src", help="export file or folder")
    p.add_argument("--out", required=True, help="folder for the canonical Parquet tables")
    p.add_argument("--tz", default=None, help="jira-csv, azure-devops-csv: time zone of the export's naive times")
    p.add_argument("--date-format", default=None, help="jira-csv, azure-devops-csv: strptime format of its dates")
    p.add_argument("--project", default=None, help="github: project key (default: the repository)")
    p.add_argument("--force", action="store_true",
                   help="write into a folder that holds other files too, replacing only the table files")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("sync", help="fetch what changed in a live tracker into a canonical store")
    trackers = p.add_subparsers(dest="tracker", required=True)
    j = trackers.add_parser("jira", help="Jira Cloud (JIRA_EMAIL, JIRA_API_TOKEN) or Data Center (JIRA_PAT)")
    j.add_argument("--url", required=True, help="the site's base URL, e.g. https://acme.atlassian.net")
    j.add_argument("--store", required=True, help="folder of canonical tables to keep up to date")
    j.add_argument("--jql", help="which issues (default: every issue the credential can see)")
    j.add_argument("--flavour", choices=["cloud", "datacenter"], default="cloud", help="which Jira (default cloud)")
    j.add_argument("--full", action="store_true", help="fetch everything again, not only what changed")
    j.add_argument("--sweep", action="store_true",
                   help="also list every key now (deleted issues leave the store); done daily anyway")
    j.add_argument("--quiet", action="store_true", help="no progress bars (they show only on a terminal)")
    j.set_defaults(func=_cmd_sync, repo=None, api_url=None, pulls=False, org=None, project=None, team=None)
    g = trackers.add_parser("github", help="a GitHub repository (GITHUB_TOKEN)")
    g.add_argument("--repo", required=True, help="OWNER/NAME")
    g.add_argument("--store", required=True, help="folder of canonical tables to keep up to date")
    g.add_argument("--api-url", default="https://api.github.com", help="GitHub Enterprise: https://HOST/api/v3")
    g.add_argument("--pulls", action="store_true", help="take pull requests as tickets too")
    g.add_argument("--full", action="store_true", help="fetch everything again, not only what changed")
    g.add_argument("--quiet", action="store_true", help="no progress bars (they show only on a terminal)")
    g.set_defaults(func=_cmd_sync, url=None, jql=None, flavour="cloud", sweep=False, org=None, project=None,
                   team=None)
    a = trackers.add_parser("azure-devops", help="an Azure DevOps Boards project (AZURE_DEVOPS_PAT)")
    a.add_argument("--org", required=True, help="the organization's URL, e.g. https://dev.azure.com/acme")
    a.add_argument("--project", required=True, help="the project's name")
    a.add_argument("--team", help="a team whose iteration settings date the sprints")
    a.add_argument("--store", required=True, help="folder of canonical tables to keep up to date")
    a.add_argument("--full", action="store_true", help="fetch everything again, not only what changed")
    a.add_argument("--sweep", action="store_true",
                   help="also list every id now (deleted work items leave the store); done daily anyway")
    a.add_argument("--quiet", action="store_true", help="no progress bars (they show only on a terminal)")
    a.set_defaults(func=_cmd_sync, url=None, api_url=None, repo=None, jql=None, flavour="cloud", pulls=False)
    n = trackers.add_parser("linear", help="a Linear workspace (LINEAR_API_KEY)")
    n.add_argument("--store", required=True, help="folder of canonical tables to keep up to date")
    n.add_argument("--team", help="one team's issues, by its key (default: every issue the key can see)")
    n.add_argument("--api-url", default="https://api.linear.app", help="the API's origin (its /graphql endpoint)")
    n.add_argument("--full", action="store_true", help="fetch everything again, not only what changed")
    n.add_argument("--sweep", action="store_true",
                   help="also list every identifier now (deleted issues leave the store); done daily anyway")
    n.add_argument("--quiet", action="store_true", help="no progress bars (they show only on a terminal)")
    n.set_defaults(func=_cmd_sync, url=None, repo=None, jql=None, flavour="cloud", pulls=False, org=None,
                   project=None)

    p = sub.add_parser("generate", help="simulate a realistic tracker history")
    p.add_argument("--out", required=True, help="folder for the canonical tables")
    p.add_argument("--projects", type=_at_least(1), default=6, help="teams/projects to simulate (at least 1)")
    p.add_argument("--tickets", type=_at_least(1), default=6000,
                   help="total tickets to simulate (at least 1; each team gets at least 20)")
    p.add_argument("--seed", type=int, default=1, help="random seed (same seed, same history)")
    p.add_argument("--freeze-from-day", type=float,
                   help="plant a change of behaviour for the monitoring loop: from this day of the history on, "
                        "every team stops work in the last week before each due date and plans as before")
    p.add_argument("--shared-shock", type=_share, default=0.5,
                   help="share of each team's weekly capacity noise that all teams meet together, 0 to 1 "
                        "(default 0.5; 0: teams vary independently)")
    p.add_argument("--programs-every-days", type=_at_least(0), default=90,
                   help="a program across 2-4 teams (an epic over their milestones, later teams' tickets "
                        "waiting on earlier teams') starts every this many days (default 90; 0: no programs)")
    p.add_argument("--format", default="canonical",
                   choices=["canonical", "jira-json", "jira-csv", "github", "azure-devops", "azure-devops-csv",
                            "linear", "linear-csv"],
                   help="write canonical tables, or render the history as a tracker's export")
    p.add_argument("--quirks", help="comma-separated quirks of the rendered export (src/slipcast/ingest/exports/quirks.py)")
    p.add_argument("--force", action="store_true",
                   help="write into a folder that holds other files too, replacing only the table files")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("features", help="build point-in-time training sets from canonical tables")
    p.add_argument("--data", help="canonical tables folder (default: settings data_dir)")
    p.add_argument("--out", help="output folder (default: <work_dir>/features)")
    p.add_argument("--engine", choices=("pandas", "spark"),
                   help="pandas in this process, or per project on Spark (default: settings features.engine)")
    p.set_defaults(func=_cmd_features)

    p = sub.add_parser("train", help="backtest candidates, log to MLflow, guard the champion")
    p.add_argument("--data", help="canonical tables folder (features are built from it)")
    p.add_argument("--features", help="folder of training sets written by `slipcast features`")
    p.add_argument("--target", action="append", choices=("milestone", "ticket"),
                   help="target(s) to train (default: both)")
    p.add_argument("--candidate", action="append",
                   help="candidate(s) to backtest (default: settings training.candidates)")
    p.add_argument("--json", action="store_true", help="also print the full result as JSON")
    p.add_argument("--accept-final-state", action="store_true",
                   help="train on an export that holds no history (final states only), the model marked so")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("serve", help="run the forecast API")
    p.add_argument("--host", help="bind address (default: settings serving.host)")
    p.add_argument("--port", type=_port, help="port, 1 to 65535 (default: settings serving.port)")
    p.add_argument("--workers", type=_at_least(1), help="worker processes (default: settings serving.workers)")
    p.add_argument("--store", help=STORE_HELP + "; its open milestones are served (GET /v1/milestones)")
    p.add_argument("--sync", choices=[t.value for t in Tracker],
                   help="keep the store current from this tracker: sync, monitor, and retrain --if-needed daily, "
                        "in the background (default: settings serving.sync)")
    p.add_argument("--sync-url", help="jira: the site's base URL; github: the API's (Enterprise); linear: the API's "
                                      "origin")
    p.add_argument("--sync-repo", help="github: OWNER/NAME")
    p.add_argument("--sync-jql", help="jira: which issues")
    p.add_argument("--sync-flavour", choices=FLAVOURS, help="jira: which Jira (default cloud)")
    p.add_argument("--sync-pulls", action="store_true", help="github: take pull requests as tickets too")
    p.add_argument("--sync-org", help="azure-devops: the organization's URL")
    p.add_argument("--sync-project", help="azure-devops: the project's name")
    p.add_argument("--sync-team", help="azure-devops: a team whose iteration settings date the sprints; linear: one "
                                       "team's issues, by its key")
    p.add_argument("--sync-interval", type=_positive, help="seconds between syncs (default 900)")
    p.add_argument("--retrain-hour", choices=[str(h) for h in range(24)], metavar="HOUR",
                   help="UTC hour from which retrain --if-needed runs once a day (default 3)")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("mcp", help="the assistant's tools (MCP) over standard input and output, for a desktop "
                                   "assistant; the service serves them at /mcp")
    p.add_argument("--store", help=STORE_HELP + "; its live state is what the tools answer from")
    p.set_defaults(func=_cmd_mcp)

    p = sub.add_parser("backfill", help="record each milestone's daily forecast history, scored by the champion")
    p.add_argument("--store", help=STORE_HELP)
    p.set_defaults(func=_cmd_backfill)

    p = sub.add_parser("publish", help="write each open milestone's forecast into its Jira fix version's or GitHub "
                                       "milestone's description (only Slipcast's block, only when it moved)")
    trackers = p.add_subparsers(dest="tracker", required=True)
    j = trackers.add_parser("jira", help="Jira Cloud (JIRA_EMAIL, JIRA_API_TOKEN) or Data Center (JIRA_PAT): needs "
                                         "Administer Projects")
    j.add_argument("--url", required=True, help="the site's base URL, e.g. https://acme.atlassian.net")
    j.add_argument("--flavour", choices=["cloud", "datacenter"], default="cloud", help="which Jira (default cloud)")
    g = trackers.add_parser("github", help="a GitHub repository (GITHUB_TOKEN with Issues: read and write)")
    g.add_argument("--repo", required=True, help="OWNER/NAME")
    g.add_argument("--api-url", default="https://api.github.com", help="GitHub Enterprise: https://HOST/api/v3")
    for tracker in (j, g):
        tracker.add_argument("--store", help=STORE_HELP)
        tracker.add_argument("--dry-run", action="store_true", help="print the diff of each description that would "
                                                                    "change; write nothing")
        tracker.add_argument("--min-points", type=_share, help="rewrite a block when its probability moved by at least "
                                                               "this much, 0 to 1 (default serving.publish's, or 0.05)")
        tracker.add_argument("--page-url", help="base of the link to each milestone's page "
                                                "(default serving.publish.page_url)")
        tracker.add_argument("--quiet", action="store_true", help="no progress bars (they show only on a terminal)")
        tracker.set_defaults(func=_cmd_publish)

    p = sub.add_parser("monitor", help="published forecasts against their outcomes, and drift; exits 1 when a "
                                       "threshold breaks")
    p.add_argument("--store", help=STORE_HELP)
    p.add_argument("--features", help="the champion's training set folder (default: work/features)")
    p.add_argument("--out", help="report folder (default: settings monitoring.report_dir)")
    p.set_defaults(func=_cmd_monitor)

    p = sub.add_parser("retrain", help="features, training (champion guarded) and backfill from the store, for a "
                                       "scheduler; --if-needed: only when `monitor` finds a threshold broken")
    p.add_argument("--store", help=STORE_HELP + "; sync it first")
    p.add_argument("--if-needed", action="store_true", help="run the monitor first; retrain only if it breaks")
    p.set_defaults(func=_cmd_retrain)

    p = sub.add_parser("replay", help="the monitoring loop replayed over a stored history, beside a frozen model")
    p.add_argument("--data", required=True, help="canonical tables folder")
    p.add_argument("--from", dest="start", required=True, help="the first week (a date)")
    p.add_argument("--every-days", type=_positive, default=7, help="days between forecasts, above 0 (default 7)")
    p.add_argument("--out", help="report folder (default: <monitoring.report_dir>/replay)")
    p.set_defaults(func=_cmd_replay)

    p = sub.add_parser("doctor", help="what a tracker's tables can and cannot support, before training")
    p.add_argument("data", help="canonical tables folder (what `slipcast import` wrote)")
    p.set_defaults(func=_cmd_doctor)

    p = sub.add_parser("eval-real", help="evaluate on the public datasets; write docs/results.md")
    p.add_argument("--data", help="folder of the public datasets (default: settings evaluation.shared_data_dir)")
    p.set_defaults(func=_cmd_eval_real)
    for name, command in sub.choices.items():
        if name not in ("sync", "publish"):  # their trackers' parsers take it
            command.add_argument("--quiet", action="store_true", help="no progress bars (they show only on a terminal)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``slipcast`` console command."""
    args = build_parser().parse_args(argv)
    if args.quiet:
        quiet()
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"slipcast {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
