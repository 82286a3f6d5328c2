"""``make bench``: every benchmark stage in its own process, figures printed as they come.

Sizes come from the environment: BENCH_TICKETS (default 1,000,000), BENCH_PROJECTS (default
3000), BENCH_TRAIN_ROWS (default 100,000); the live stage simulates 1,000 teams. Results are also
written to work/bench/results.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from benchmarks.stages import WORK


def run(stage: str, *args) -> dict:
    print(f"\n== {stage} {' '.join(map(str, args))}", flush=True)
    out = subprocess.run([sys.executable, "-m", "benchmarks.stages", stage, *map(str, args)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"benchmark stage {stage} failed")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(result, indent=2), flush=True)
    return result


def main() -> int:
    tickets = int(os.environ.get("BENCH_TICKETS", 1_000_000))
    projects = int(os.environ.get("BENCH_PROJECTS", 3000))
    rows = int(os.environ.get("BENCH_TRAIN_ROWS", 100_000))
    WORK.mkdir(parents=True, exist_ok=True)
    results = {
        "import": run("import"),
        "generate": run("generate", tickets, projects),
        "features": run("features"),
        "spark": run("spark"),
        "train": run("train", rows),
        "serve": run("serve"),
        "sync": run("sync", int(os.environ.get("BENCH_SYNC_ISSUES", 3000))),
        "programs": run("programs"),
        "live": run("live"),
    }
    (WORK / "results.json").write_text(json.dumps(results, indent=2))
    f, s = results["features"], results["serve"]
    print("\n== summary")
    print(f"import: {results['import'].get('records_per_s')} records/s on Duraspace")
    print(f"generate: {results['generate']['tickets']} tickets, {results['generate']['events']} events in "
          f"{results['generate']['seconds']} s, peak {results['generate']['peak_mb']} MB")
    print(f"features: {f['seconds']} s = {f['ratio_to_pass']}x one sorted group-by pass over the events; "
          f"peak {f['peak_mb']} MB = {f['peak_over_data']}x the tables in memory")
    sp = results["spark"]
    print(f"spark ({sp['master']}, {sp['partitions']} buckets): {sp['seconds']} s = "
          f"{sp['seconds'] / f['seconds']:.2f}x the pandas engine; peak {sp['peak_tree_mb']} MB (driver, JVM and "
          f"workers) = {sp['peak_tree_mb'] / f['peak_mb']:.2f}x pandas; same rows: {sp['same_rows_as_pandas']}")
    print(f"train: backtest + final fit on {results['train']['snapshots']} snapshots in {results['train']['seconds']} s, "
          f"peak {results['train']['peak_mb']} MB; Brier skill {results['train']['brier_skill']}")
    b = s["batch_1000"]
    print(f"serve: p50 {s['http_forecast']['p50_ms']} ms over HTTP vs {s['bare_predict']['p50_ms']} ms bare "
          f"(+{s['http_over_bare_p50_ms']} ms, {s['http_over_bare_ratio']}x); 1,000-milestone batch: "
          f"{b['full_history']['seconds']} s with full event history ({b['full_history']['body_mb']} MB; in process "
          f"{b['full_history_in_process']['parse_validate_s']} s parsing, "
          f"{b['full_history_in_process']['features_and_model_s']} s "
          f"features and model), {b['ticket_state']['seconds']} s with ticket state only ({b['ticket_state']['body_mb']} MB), "
          f"{b['columns']['seconds']} s as columns ({b['columns']['body_mb']} MB; in process "
          f"{b['columns_in_process']['parse_validate_s']} s parsing, {b['columns_in_process']['features_and_model_s']} s "
          "features and model); "
          + ", ".join(f"{x['requests_per_s']} req/s at {x['concurrency']} ({x['errors']} errors)" for x in s["load"]))
    y = results["sync"]
    print(f"sync (Jira Cloud, loopback fake): {y['issues']} issues in {y['seconds']} s ({y['requests']} requests, "
          f"{y['changelog_pages']} changelog pages, {y['mb']} MB); after 5 edits: {y['incremental']['issues']} issues, "
          f"{y['incremental']['requests']} requests, {y['incremental']['seconds']} s")
    a = y["azure_devops"]
    print(f"sync (Azure DevOps, loopback fake): {a['items']} work items, {a['revisions']} revisions in {a['seconds']} s "
          f"({a['requests']} requests, {a['mb']} MB); after 5 edits: {a['incremental']['items']} work items, "
          f"{a['incremental']['requests']} requests, {a['incremental']['seconds']} s")
    n = y["linear"]
    print(f"sync (Linear GraphQL, loopback fake): {n['issues']} issues in {n['seconds']} s ({n['issues_per_s']} "
          f"issues/s, {n['requests']} requests, {n['mb']} MB); after 5 edits: {n['incremental']['issues']} issues, "
          f"{n['incremental']['requests']} requests, {n['incremental']['seconds']} s")
    pr = results["programs"]
    print(f"programs: {pr['milestones']} milestones, {pr['edges']} edges, {pr['draws']:,} draws in {pr['seconds']} s "
          f"= {pr['ratio_to_plain']}x the plain forecasts of the same milestones ({pr['plain_forecasts_s']} s)")
    v = results["live"]
    g = v["get_milestone"]
    print(f"live: refresh of {v['open_milestones']} open milestones and {v['programs']} programs "
          f"{v['refresh_s']['warm_median']} s "
          f"(cold {v['refresh_s']['cold']} s; read by a second worker {v['refresh_s']['read_by_another_worker']} s); "
          f"backfill {v['backfill']['forecasts']} daily forecasts in "
          f"{v['backfill']['seconds']} s = {v['backfill']['seconds_per_60000']} s per 1,000 x 60 days; "
          f"GET /v1/milestones/{{id}} p50 {g['p50_ms']} ms (httpx), {g['hey_c1']['p50_ms']} ms (hey -c 1); "
          f"{g['hey_c32']['requests_per_s']} req/s with hey -c 32 "
          f"on 2 workers ({g['hey_c32']['errors']} errors), {g['hey_c32_through_refresh']['requests_per_s']} req/s "
          f"through a refresh ({g['hey_c32_through_refresh']['errors']} errors; the new state served "
          f"{g['hey_c32_through_refresh']['new_state_served_after_change_s']} s after the store changed, "
          f"{'within' if g['hey_c32_through_refresh']['during_run'] else 'after'} the "
          f"{g['hey_c32_through_refresh']['run_s']} s run); a bare endpoint with the same "
          f"body: {v['floor_same_body']['requests_per_s']} req/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
