"""``make demo``'s last step: serve the champion and show a real forecast request.

Picks the milestone with the most open work near the end of the demo history, writes the
request a dashboard would have sent for it then to ``work/demo_request.json``, prints curl
commands for it and for the open milestones of the demo store, and runs the service on that
store. ``--check`` starts the service, sends that request over HTTP, lists the open milestones,
prints the answers and stops.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd

from slipcast.core.contracts import past_outcomes
from slipcast.core.settings import Settings, get_settings
from slipcast.features.pipeline import read_training_set
from slipcast.features.store_history import History
from slipcast.ingest.tables import read_tables
from slipcast.live.programs import programs_of
from slipcast.tools.requests import request_for
from slipcast.tools.service import running_service


def demo_request(settings: Settings) -> dict:
    """The demo's request: the milestone snapshot with the most open work in the last tenth of
    the demo history, asked as of its time."""
    tables = read_tables(settings.resolve(settings.data_dir))
    frame, _ = read_training_set(settings.resolve(settings.work_dir) / "features" / "milestone.parquet")
    recent = frame[frame["as_of"] >= frame["as_of"].quantile(0.9)]
    row = recent.sort_values(["remaining_count", "scope_count", "as_of"], ascending=False).iloc[0]
    return request_for(tables, row["milestone_id"], row["as_of"], past_outcomes(frame))


def demo_as_of(settings: Settings, history: History) -> pd.Timestamp:
    """The time the demo serves its simulated store as of: the latest week at which a program
    across teams has two milestones open (the page then shows one), else the history's end."""
    end = pd.Timestamp(history.tl.data_end, unit="us", tz="UTC")
    for now in pd.date_range(end=end, periods=520, freq="7D")[::-1]:
        open_ = set(history.open_at(now))
        if any(len(open_ & set(p.milestones)) >= 2 for p in programs_of(history, now.to_pydatetime(), settings)):
            return now
    return end


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="send the request once, print the answer, stop")
    parser.add_argument("--screenshot", metavar="PNG", help="save the dashboard page as headless Chromium shows it, stop")
    args = parser.parse_args(argv)
    settings = get_settings()
    body = demo_request(settings)
    path = settings.resolve(settings.work_dir) / "demo_request.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=1))
    base = f"http://{settings.serving.host}:{settings.serving.port}"
    print(f"\nDemo request for milestone {body['milestone']['milestone_id']} as of {body['as_of']} "
          f"({len(body['tickets'])} tickets, {len(body['events'])} events) written to {path}")
    print("Ask the service (ready-to-paste):\n")
    print(f"  curl -s -X POST {base}/v1/forecasts -H 'Content-Type: application/json' -d @{path}\n")
    print("The demo store's milestones open now, riskiest first:\n")
    print(f"  curl -s '{base}/v1/milestones?limit=5'\n")
    store = str(settings.resolve(settings.data_dir))
    as_of = demo_as_of(settings, History(read_tables(store), settings.features))
    env = {"SLIPCAST_SERVING__STORE": store, "SLIPCAST_SERVING__AS_OF": as_of.isoformat()}
    print(f"The demo serves its simulated store as of {as_of:%Y-%m-%d}, when a program across teams is open "
          f"(`SLIPCAST_SERVING__AS_OF`).")
    print(f"The dashboard page: {base}/  Its programs: curl -s '{base}/v1/programs'\n")
    if args.screenshot:  # the portfolio, and its riskiest milestone beside it (<name>-milestone.png)
        shot = Path(args.screenshot).resolve()
        with running_service(settings.serving.port, env) as url:
            riskiest = httpx.get(f"{url}/v1/milestones", params={"limit": 1}, timeout=30).json()["items"]
            pages = [(shot, f"{url}/")] + [(shot.with_name(f"{shot.stem}-milestone.png"),
                                            f"{url}/milestones/{m['milestone_id']}") for m in riskiest]
            return max(subprocess.call(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
                                        "--hide-scrollbars", "--window-size=1280,900", f"--screenshot={path}", page],
                                       stderr=subprocess.DEVNULL) for path, page in pages)
    if not args.check:
        print(f"Serving on {base} (docs at {base}/docs); Ctrl-C stops.\n", flush=True)
        return subprocess.call([sys.executable, "-m", "slipcast.cli", "serve", "--store", store],
                               env={**os.environ, "SLIPCAST_SERVING__AS_OF": as_of.isoformat()})
    with running_service(settings.serving.port, env) as url:
        answer = httpx.post(f"{url}/v1/forecasts", json=body, timeout=30)
        portfolio = httpx.get(f"{url}/v1/milestones", params={"limit": 5}, timeout=30)
        programs = httpx.get(f"{url}/v1/programs", params={"limit": 3}, timeout=120)
    print(json.dumps(answer.json(), indent=2))
    print(json.dumps(portfolio.json(), indent=2))
    print(json.dumps(programs.json(), indent=2))
    ok = answer.status_code == portfolio.status_code == programs.status_code == 200
    return 0 if ok and programs.json()["total"] else 1


if __name__ == "__main__":
    sys.exit(main())
