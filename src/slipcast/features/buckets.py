"""A history split into buckets of whole projects, each holding every row its features read.

Both engines bucket the same way (docs/architecture.md, "Buckets of projects"): a project's
bucket is the CRC-32 of its key modulo the number of buckets. A bucket holds its projects'
milestones; every ticket that was ever in one of them (or belongs to one of its projects); the
tickets those are linked to (a dependency's status and project are features); the events of all
of these and its milestones' own events; and the links of its tickets. A ticket can be in
several buckets. The pandas engine runs ``build_training_sets`` on one bucket at a time, so its
peak memory follows the largest bucket, not the whole history; ``features.spark_engine`` states
the same rule in Spark's terms.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator

import numpy as np
import pandas as pd

from slipcast.ingest.tables import Tables


def bucket_count(events: int, bucket_events: int) -> int:
    """How many buckets a history of ``events`` events is split into, for about
    ``bucket_events`` events per bucket (at least one)."""
    return max(1, math.ceil(events / bucket_events))


def project_buckets(projects: pd.Series, buckets: int) -> np.ndarray:
    """Each row's bucket: the CRC-32 of its project key (UTF-8) modulo ``buckets``."""
    codes, keys = pd.factorize(projects)
    per_key = np.array([zlib.crc32(str(k).encode()) % buckets for k in keys], dtype=np.int64)
    return per_key[codes] if len(keys) else np.zeros(len(projects), dtype=np.int64)


def bucket_tables(tables: Tables, buckets: int) -> Iterator[Tables]:
    """The tables of each non-empty bucket in turn, rows in the order ``tables`` holds them."""
    milestones, tickets, events, links = tables.frames()
    if buckets == 1 or milestones.empty:
        yield tables
        return
    owner = pd.Series(project_buckets(milestones["project"], buckets), index=milestones["milestone_id"].to_numpy())
    # every ticket key the tables name (events and links may name tickets the tickets table lacks)
    sizes = np.cumsum([0, len(tickets), len(events), len(links)])
    codes, keys = pd.factorize(pd.concat([tickets["ticket_id"], events["ticket_id"], links["from_ticket"],
                                          links["to_ticket"]], ignore_index=True))
    ticket, event_ticket, (a, b) = codes[:sizes[1]], codes[sizes[1]:sizes[2]], np.split(codes[sizes[2]:], 2)

    # a ticket's own buckets: its project's, and each bucket owning a milestone it was ever in
    moves = (events["field"] == "milestone").to_numpy()
    held = np.concatenate([event_ticket[moves], event_ticket[moves], ticket])
    held_part = np.concatenate([owner.reindex(column).to_numpy() for column in
                                (events["from_value"][moves], events["to_value"][moves], tickets["milestone_id"])])
    known = (held >= 0) & ~np.isnan(held_part)
    first = np.zeros((buckets, len(keys)), dtype=bool)
    first[project_buckets(tickets["project"], buckets), ticket] = True
    first[held_part[known].astype(np.int64), held[known]] = True

    # and the buckets of the tickets it is linked to, either way round
    needed = first.copy()
    for src, dst in ((a, b), (b, a)):  # both ends of a link are required: never missing
        holder, link = np.nonzero(first[:, src])
        needed[holder, dst[link]] = True

    milestone_part = owner.to_numpy()
    own_event = np.flatnonzero(event_ticket < 0)
    event_owner = owner.reindex(events["milestone_id"].take(own_event)).to_numpy()
    for part in range(buckets):
        ms = milestones[milestone_part == part]
        if ms.empty:
            continue
        ev = needed[part][event_ticket]
        ev[own_event] = event_owner == part  # where no ticket (code -1), the milestone's own events
        lk = first[part][a] | first[part][b]
        yield Tables(milestones=ms.reset_index(drop=True), tickets=tickets[needed[part][ticket]].reset_index(drop=True),
                     events=events[ev].reset_index(drop=True), links=links[lk].reset_index(drop=True))
