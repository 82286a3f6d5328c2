"""``make demo``'s last step: serve the champion and show a real forecast request.

Picks the milestone with the most open work near the end of the demo history, writes the
request a dashboard would have sent for it then to ``work/demo_request.json``, prints a curl
command, and runs the service. ``--check`` starts the service, sends that request over HTTP, prints
the answer and stops.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import httpx
import pandas as pd

from features.online import truncate
from features.pipeline import read_training_set
from features.tables import Tables, read_tables
from serving.process import running_service
from slipcast.settings import get_settings


def _iso(value):
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def _val(value):
    """A JSON-ready value: missing ones (NaN, NaT, None) become null."""
    return None if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)) else value


def request_for(tables: Tables, milestone_id: str, as_of: pd.Timestamp, outcomes: pd.DataFrame) -> dict:
    """The JSON a dashboard would send for ``milestone_id`` at ``as_of``: the milestone, the
    team's tickets as they stood then with their events, links between them, and past outcomes
    known by then."""
    tables = truncate(tables, as_of)
    m = tables.milestones.set_index("milestone_id").loc[milestone_id]
    team = tables.tickets[(tables.tickets["project"] == m["project"]) & (tables.tickets["created_at"] <= as_of)]
    recent = team[(team["resolved_at"].isna()) | (team["resolved_at"] >= as_of - pd.Timedelta(weeks=12))]
    links = tables.links[tables.links["from_ticket"].isin(recent["ticket_id"])
                         | tables.links["to_ticket"].isin(recent["ticket_id"])]
    others = tables.tickets[tables.tickets["ticket_id"].isin(set(links["from_ticket"]) | set(links["to_ticket"]))
                            & (tables.tickets["created_at"] <= as_of)]
    recent = pd.concat([recent, others]).drop_duplicates("ticket_id")
    ids = set(recent["ticket_id"])
    ev = tables.events[(tables.events["at"] <= as_of) & (tables.events["ticket_id"].isin(ids)
                                                         | (tables.events["milestone_id"] == milestone_id))]
    past = outcomes[(outcomes["project"] == m["project"]) & (outcomes["known_at"] <= as_of)]
    return {
        "milestone": {"milestone_id": milestone_id, "project": m["project"], "name": m["name"], "kind": m["kind"],
                      "start_at": _iso(m["start_at"]), "due_at": _iso(m["due_at"])},
        "tickets": [{"ticket_id": t.ticket_id, "project": t.project, "type": _val(t.type), "priority": _val(t.priority),
                     "created_at": _iso(t.created_at),
                     "resolved_at": _iso(t.resolved_at) if t.status == "done" else None,
                     "story_points": _val(t.story_points), "assignee": _val(t.assignee), "status": t.status,
                     "milestone_id": _val(t.milestone_id)}
                    for t in recent.itertuples()],
        "events": [{"ticket_id": _val(e.ticket_id), "milestone_id": _val(e.milestone_id), "at": _iso(e.at),
                    "field": e.field, "from_value": _val(e.from_value), "to_value": _val(e.to_value)}
                   for e in ev.itertuples()],
        "links": [{"from_ticket": x.from_ticket, "to_ticket": x.to_ticket, "kind": x.kind,
                   "created_at": _iso(x.created_at)} for x in links.itertuples()],
        "past_milestones": [{"known_at": _iso(p.known_at), "slipped": bool(p.slipped)} for p in past.itertuples()],
        "as_of": _iso(as_of),
    }


def demo_request(settings) -> dict:
    """The demo's request: the milestone snapshot with the most open work in the last tenth of
    the demo history, asked as of its time."""
    tables = read_tables(settings.resolve(settings.data_dir))
    frame, _ = read_training_set(settings.resolve(settings.work_dir) / "features" / "milestone.parquet")
    recent = frame[frame["as_of"] >= frame["as_of"].quantile(0.9)]
    row = recent.sort_values(["remaining_count", "scope_count", "as_of"], ascending=False).iloc[0]
    last = frame.dropna(subset=["label"]).sort_values("as_of").groupby("milestone_id").tail(1)
    outcomes = pd.DataFrame({"project": last["project"], "known_at": last["label_known_at"], "slipped": last["label"]})
    return request_for(tables, row["milestone_id"], row["as_of"], outcomes)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="send the request once, print the answer, stop")
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
    if not args.check:
        print(f"Serving on {base} (docs at {base}/docs); Ctrl-C stops.\n", flush=True)
        return subprocess.call([sys.executable, "-m", "slipcast.cli", "serve"])
    with running_service(settings.serving.port) as url:
        answer = httpx.post(f"{url}/v1/forecasts", json=body, timeout=30)
    print(json.dumps(answer.json(), indent=2))
    return 0 if answer.status_code == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
