"""The forecast ledger: every forecast the service published, and every backfilled one, in a
database (SQLite file by default, PostgreSQL in the cluster profile: the same code through
SQLAlchemy).

A row is one milestone's forecast as of one time by one model version: its status, probability,
basis and band, the due date known then, the model's name, version and run, and a hash of the
feature row it came from. A program's joint forecast has a table of its own (``program_forecasts``:
its chance, probability, band, 50 % and 85 % dates, open milestones and draws). Rows are only ever
added. The key (milestone or program, as_of, model name and version, backfilled) is unique and an
insert that meets an existing key is dropped, so workers that build the same state
(``live.portfolio``: as_of rounded to the refresh period) record it once between them
(docs/architecture.md, "Forecast ledger"). Alerts are claimed here the same way (``alerts``,
``program_alerts``), so one worker sends each, and their deliveries are logged beside them; and
the service's background runs (``runs``: a sync, the monitor, a retrain), so one worker runs each.
Every write ``slipcast publish`` made into a tracker is logged in ``publications`` (never the
credential: the site is its origin only).

A SQLite ledger's folder is made where missing. Whatever else goes wrong with the database (a
file that is not one, or cut short; a folder that cannot be made; a database open read-only) is
a ``LedgerError`` naming the ledger and the database's reason, never SQLAlchemy's own: the
service reports it and serves on, the commands stop on it with one line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from slipcast.live.records import ProgramHistoryPoint
from slipcast.scoring.records import Forecast, ModelRef

METADATA = sa.MetaData()
FORECASTS = sa.Table(
    "forecasts", METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("milestone_id", sa.String(200), nullable=False),
    sa.Column("project", sa.String(200), nullable=False),
    sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(30), nullable=False),
    sa.Column("probability", sa.Float),
    sa.Column("basis", sa.String(20)),
    sa.Column("risk_band", sa.String(50)),
    sa.Column("due_at", sa.DateTime(timezone=True)),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(50), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("feature_hash", sa.String(16), nullable=False),
    sa.Column("backfilled", sa.Boolean, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("milestone_id", "as_of", "model_name", "model_version", "backfilled", name="one_forecast"),
)
KEY = ["milestone_id", "as_of", "model_name", "model_version", "backfilled"]
sa.Index("forecasts_by_milestone", FORECASTS.c.milestone_id, FORECASTS.c.as_of)
sa.Index("forecasts_by_time", FORECASTS.c.as_of)  # an alert's windows (``Ledger.compared``): a range, not the table
PROGRAM_FORECASTS = sa.Table(  # a program's joint forecast, as ``forecasts`` holds a milestone's
    "program_forecasts", METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("program_id", sa.String(200), nullable=False),
    sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
    sa.Column("probability", sa.Float),
    sa.Column("chance", sa.Float),
    sa.Column("risk_band", sa.String(50)),
    sa.Column("done_50", sa.DateTime(timezone=True)),
    sa.Column("done_85", sa.DateTime(timezone=True)),
    sa.Column("open_milestones", sa.Integer, nullable=False),
    sa.Column("draws", sa.Integer, nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(50), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("backfilled", sa.Boolean, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("program_id", "as_of", "model_name", "model_version", "backfilled",
                        name="one_program_forecast"),
)
sa.Index("program_forecasts_by_program", PROGRAM_FORECASTS.c.program_id, PROGRAM_FORECASTS.c.as_of)
sa.Index("program_forecasts_by_time", PROGRAM_FORECASTS.c.as_of)


PUBLICATIONS = sa.Table(  # every write into a tracker (``live.publish``), and every publish that failed
    "publications", METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tracker", sa.String(20), nullable=False),
    sa.Column("site", sa.String(300), nullable=False),  # scheme://host:port only: never a user or a token
    sa.Column("target", sa.String(300), nullable=False),  # "version 10001", "milestone 3 of o/r", "project P property k"
    sa.Column("milestone_id", sa.String(200)),  # null for a project property, or a failed run
    sa.Column("what", sa.String(300), nullable=False),  # what changed: "description: 41 % -> 48 %, band medium", ...
    sa.Column("state", sa.String(30)),
    sa.Column("probability", sa.Float),
    sa.Column("risk_band", sa.String(50)),
    sa.Column("when_50", sa.DateTime(timezone=True)),
    sa.Column("when_85", sa.DateTime(timezone=True)),
    sa.Column("as_of", sa.DateTime(timezone=True)),
    sa.Column("error", sa.String(500)),  # a failed publish: why
    sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("publications_by_target", PUBLICATIONS.c.tracker, PUBLICATIONS.c.target, PUBLICATIONS.c.written_at)


def _alerts_table(name: str, subject: str, unique: str) -> sa.Table:
    """One row per alert about a milestone or a program (the ``subject`` column): claimed once
    (the key), then its delivery's outcome."""
    return sa.Table(
        name, METADATA,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subscription", sa.String(16), nullable=False),  # a hash of the webhook URL
        sa.Column(subject, sa.String(200), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),  # pending, delivered, failed, dropped
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("response", sa.String(300)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("subscription", subject, "as_of", name=unique),
    )


ALERTS = _alerts_table("alerts", "milestone_id", "one_alert")
PROGRAM_ALERTS = _alerts_table("program_alerts", "program_id", "one_program_alert")
RUNS = sa.Table(  # the service's background runs (``live.autosync``): one row per job and slot, claimed by one worker
    "runs", METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(50), nullable=False),  # sync, monitor, retrain
    sa.Column("slot", sa.DateTime(timezone=True), nullable=False),  # the start of the period the run is for
    sa.Column("worker", sa.String(200), nullable=False),  # host:pid of the worker that claimed it
    sa.Column("status", sa.String(20), nullable=False),  # running, ok, failed, skipped
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("summary", sa.Text),  # JSON: what the run did, in numbers
    sa.Column("error", sa.String(1000)),
    sa.UniqueConstraint("job", "slot", name="one_run"),
)
sa.Index("runs_by_job", RUNS.c.job, RUNS.c.started_at)
RUN_STATES = ("running", "ok", "failed", "skipped")


@dataclass(frozen=True)
class Subject:
    """What rows are about: their forecasts' table, their alerts' table, and the id column."""

    forecasts: sa.Table
    alerts: sa.Table
    key: str


MILESTONES = Subject(FORECASTS, ALERTS, "milestone_id")
PROGRAMS = Subject(PROGRAM_FORECASTS, PROGRAM_ALERTS, "program_id")


def feature_hash(features: dict) -> str:
    """A short hash of a forecast's feature row (which values it came from, not the values)."""
    return hashlib.sha256(json.dumps(features, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _utc(value: datetime | None) -> datetime | None:
    """Times as UTC (SQLite keeps no offset: every time written and read here is UTC)."""
    if value is None:
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


SCHEMA_TRIES = 5  # looks at the tables a worker takes while others make them (``_make_tables``)


class LedgerError(RuntimeError):
    """The ledger cannot be opened, read or written; the message names it and says why."""


def _make_tables(engine: sa.Engine) -> None:
    """The ledger's tables and indexes, each made where missing (a ledger made before an index was
    added gets it); a complete ledger is only looked at, so one open read-only opens. Looking and
    making are two steps, so workers opening a new ledger at once race between them: the one whose
    table or index another made meanwhile looks again."""
    for attempt in range(SCHEMA_TRIES):
        try:
            if not {t.name for t in METADATA.sorted_tables} <= set(sa.inspect(engine).get_table_names()):
                METADATA.create_all(engine)
            inspector = sa.inspect(engine)
            present = {i["name"] for table in METADATA.sorted_tables for i in inspector.get_indexes(table.name)}
            missing = [index for table in METADATA.sorted_tables for index in table.indexes if index.name not in present]
            if missing:
                with engine.begin() as conn:
                    for index in missing:
                        conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))
            return
        except sa.exc.DBAPIError:
            if attempt == SCHEMA_TRIES - 1:
                raise


def _make_folder(url: sa.URL) -> None:
    """The folder of a SQLite ledger's file, made where missing (a fresh ``work/``)."""
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return  # a server's database, one in memory, or a URI (``file:...?mode=ro&uri=true``): nothing to make
    folder = Path(database).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "a file is in the way" if isinstance(exc, FileExistsError | NotADirectoryError) else exc.strerror
        raise OSError(f"its folder {folder} cannot be made: {why}") from exc


def _reason(exc: BaseException) -> str:
    """What the database (or the file system) said, without SQLAlchemy's statement and links."""
    said = str(getattr(exc, "orig", None) or exc).strip()
    return said.splitlines()[0] if said else type(exc).__name__


class Ledger:
    """The ledger at a SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://...``); its
    folder (SQLite) and tables are made if missing. Raises ``LedgerError`` where it cannot be
    opened, and from any method where the database fails."""

    def __init__(self, url: str):
        self.engine = sa.create_engine(url, pool_pre_ping=True)
        self.name = self.engine.url.render_as_string(hide_password=True)
        try:
            with self._using("open it"):
                _make_folder(self.engine.url)
                _make_tables(self.engine)
        except LedgerError:
            self.engine.dispose()
            raise

    @contextmanager
    def _using(self, doing: str) -> Iterator[None]:
        """Turn a failure of the database, or of the file system under it, into a ``LedgerError``
        that names this ledger, what it was ``doing`` and why."""
        try:
            yield
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise LedgerError(f"ledger {self.name}: cannot {doing}: {_reason(exc)}") from exc

    def close(self) -> None:
        """Let go of the database's connections."""
        self.engine.dispose()

    def record(self, forecasts: Iterable[Forecast], projects: Iterable[str], due: Iterable[datetime | None],
               backfilled: bool = False) -> int:
        """Add these forecasts (with each milestone's project and due date known then); returns
        how many rows the ledger grew by (a forecast already recorded, by another worker say, is
        skipped)."""
        now = datetime.now(UTC)
        rows = [{"milestone_id": f.milestone_id, "project": p, "as_of": _utc(f.as_of), "status": f.status,
                 "probability": f.probability, "basis": f.basis, "risk_band": f.risk_band, "due_at": _utc(d),
                 "model_name": f.model.name, "model_version": f.model.version, "run_id": f.model.run_id,
                 "feature_hash": feature_hash(f.features), "backfilled": backfilled, "recorded_at": now}
                for f, p, d in zip(forecasts, projects, due)]
        if not rows:
            return 0
        # the rows added come back (a skipped one does not): no count of a table that only grows
        statement = self._insert(FORECASTS, KEY).returning(FORECASTS.c.id)
        with self._using("record forecasts"), self.engine.begin() as conn:
            return len(conn.execute(statement, rows).all())

    def record_programs(self, program_ids: Iterable[str], points: Iterable[ProgramHistoryPoint], model: ModelRef,
                        draws: int, backfilled: bool = False) -> int:
        """Add programs' forecasts (each a point of its history, by ``model`` with ``draws``
        draws); returns how many rows the ledger grew by (one recorded already is skipped)."""
        now = datetime.now(UTC)
        rows = [{"program_id": program_id, "as_of": _utc(p.as_of), "probability": p.probability, "chance": p.chance,
                 "risk_band": p.risk_band, "done_50": _utc(p.done_50), "done_85": _utc(p.done_85),
                 "open_milestones": p.open_milestones, "draws": draws, "model_name": model.name,
                 "model_version": model.version, "run_id": model.run_id, "backfilled": backfilled, "recorded_at": now}
                for program_id, p in zip(program_ids, points)]
        if not rows:
            return 0
        statement = self._insert(PROGRAM_FORECASTS, ["program_id", *KEY[1:]]).returning(PROGRAM_FORECASTS.c.id)
        with self._using("record program forecasts"), self.engine.begin() as conn:
            return len(conn.execute(statement, rows).all())

    def record_publication(self, tracker: str, site: str, target: str, what: str, milestone_id: str | None = None,
                           numbers: dict | None = None, error: str | None = None) -> None:
        """Log one write into a tracker (``target``, ``what`` changed, the ``numbers`` written:
        state, probability, risk_band, when_50, when_85, as_of), or a publish that failed."""
        numbers = numbers or {}
        row = {"tracker": tracker, "site": site[:300], "target": target[:300], "milestone_id": milestone_id,
               "what": what[:300], "error": None if error is None else error[:500], "written_at": datetime.now(UTC),
               **{k: numbers.get(k) for k in ("state", "probability", "risk_band")},
               **{k: _utc(numbers.get(k)) for k in ("when_50", "when_85", "as_of")}}
        with self._using("record a publication"), self.engine.begin() as conn:
            conn.execute(PUBLICATIONS.insert().values(row))

    def publications(self) -> list[dict]:
        """Every write into a tracker and every failed publish, oldest first."""
        with self._using("read publications"), self.engine.connect() as conn:
            return [self._row(row) for row in conn.execute(sa.select(PUBLICATIONS).order_by(PUBLICATIONS.c.id))]

    def _insert(self, table: sa.Table, key: list[str]) -> sa.Insert:
        """An insert into ``table`` that skips a row whose ``key`` is already there."""
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            return sqlite.insert(table).on_conflict_do_nothing(index_elements=key)
        if dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing(index_elements=key)
        raise ValueError(f"the ledger runs on SQLite or PostgreSQL, not {dialect}")

    def claim_alert(self, subscription: str, subject_id: str, as_of: datetime, reason: str,
                    about: Subject = MILESTONES) -> int | None:
        """The id of a new alert for this subscription, milestone (or program: ``about``) and
        as_of; None where one was claimed already (by another worker that built the same state)."""
        row = {"subscription": subscription, about.key: subject_id, "as_of": _utc(as_of), "reason": reason,
               "status": "pending", "attempts": 0, "updated_at": datetime.now(UTC)}
        with self._using("claim an alert"), self.engine.begin() as conn:
            inserted = conn.execute(self._insert(about.alerts, ["subscription", about.key, "as_of"])
                                    .values(row).returning(about.alerts.c.id)).scalar_one_or_none()
        return inserted

    def delivered(self, alert_id: int, status: str, attempts: int, response: str, about: Subject = MILESTONES) -> None:
        """Log how an alert's delivery ended."""
        table = about.alerts
        with self._using("log an alert's delivery"), self.engine.begin() as conn:
            conn.execute(table.update().where(table.c.id == alert_id).values(
                status=status, attempts=attempts, response=response[:300], updated_at=datetime.now(UTC)))

    def alerts(self, about: Subject = MILESTONES) -> list[dict]:
        """Every alert about milestones (or programs) and its delivery, oldest first."""
        with self._using("read alerts"), self.engine.connect() as conn:
            return [{**row._asdict(), "as_of": _utc(row.as_of)}
                    for row in conn.execute(sa.select(about.alerts).order_by(about.alerts.c.id))]

    def compared(self, subjects: Iterable[str], before: datetime, lookback: timedelta, windows: Iterable[timedelta],
                 about: Subject = MILESTONES) -> dict[str, list[dict]]:
        """Per milestone (or program: ``about``), the live records an alert compares a new
        forecast with (``alerts.reasons``), oldest first: its latest before ``before`` (within
        ``lookback``), and in each of ``windows`` before it, the oldest of its lowest and of its
        highest probability, between which the largest move lies. A few rows per milestone,
        however often the service refreshed, chosen by the database in one pass over the widest
        window; a milestone of ``subjects`` without a record there is looked up apart, by its index."""
        table = about.forecasts
        c, key = table.c, table.c[about.key]
        widths = sorted(set(windows), reverse=True)

        def ranked(since: timedelta, *where, extremes: bool = True) -> sa.Select:
            """The ids of each one's first rows by as_of (latest) and by probability (lowest,
            highest; the oldest of equals), among its live rows from ``before - since``."""
            order: dict[str, list] = {"latest": [c.as_of.desc(), c.id.desc()]}
            if extremes:
                order |= {"low": [sa.nulls_last(c.probability.asc()), c.as_of, c.id],
                          "high": [sa.nulls_last(c.probability.desc()), c.as_of, c.id]}
            ranks = (sa.select(c.id, *(sa.func.row_number().over(partition_by=key, order_by=o).label(k)
                                       for k, o in order.items()))
                     .where(c.backfilled.is_(False), c.as_of < _utc(before), c.as_of >= _utc(before - since), *where)
                     .subquery())
            return sa.select(ranks.c.id).where(sa.or_(*(ranks.c[k] == 1 for k in order)))

        picks = [ranked(width) for width in widths]
        out = self._rows_of(sa.union(*picks), about) if picks else {}
        missing = [m for m in subjects if m not in out]
        if missing and (not widths or lookback > widths[0]):
            out |= self._rows_of(ranked(lookback, key.in_(missing), extremes=False), about)
        return out

    def _rows_of(self, ids: sa.Select | sa.CompoundSelect, about: Subject) -> dict[str, list[dict]]:
        """The rows ``ids`` names, per milestone (or program), oldest first."""
        table = about.forecasts
        out: dict[str, list[dict]] = {}
        with self._using("read forecasts"), self.engine.connect() as conn:
            for row in conn.execute(sa.select(table).where(table.c.id.in_(ids)).order_by(table.c.as_of, table.c.id)):
                out.setdefault(getattr(row, about.key), []).append(self._row(row))
        return out

    @staticmethod
    def _row(row) -> dict:
        """A row as a dict, its times in UTC."""
        return {k: _utc(v) if isinstance(v, datetime) else v for k, v in row._asdict().items()}

    def forecasts(self, subject_id: str | None = None, backfilled: bool | None = None,
                  about: Subject = MILESTONES) -> list[dict]:
        """Recorded forecasts of milestones (or programs: ``about``; of one; live or backfilled
        only), oldest first."""
        table = about.forecasts
        query = sa.select(table).order_by(table.c.as_of, table.c.id)
        if subject_id is not None:
            query = query.where(table.c[about.key] == subject_id)
        if backfilled is not None:
            query = query.where(table.c.backfilled == backfilled)
        with self._using("read forecasts"), self.engine.connect() as conn:
            return [self._row(row) for row in conn.execute(query)]

    def claim_run(self, job: str, slot: datetime, worker: str, stale: timedelta) -> int | None:
        """The id of the run of ``job`` for ``slot``, claimed now by ``worker``; None where another
        worker holds it (running, or done) or another run of the job is still going (a run holds
        its slot and the job for ``stale`` at most: after that its worker is taken for dead). A
        failed run's slot is claimed again."""
        now = datetime.now(UTC)
        c = RUNS.c
        going = sa.select(c.id).where(c.job == job, c.status == "running", c.started_at >= now - stale)
        row = {"job": job, "slot": _utc(slot), "worker": worker[:200], "status": "running", "started_at": now}
        with self._using("claim a run"), self.engine.begin() as conn:
            if conn.execute(going.limit(1)).first() is not None:
                return None
            claimed = conn.execute(self._insert(RUNS, ["job", "slot"]).values(row).returning(c.id)).scalar_one_or_none()
            if claimed is None:  # the slot's run failed, or was cut short: claim it again
                claimed = conn.execute(
                    RUNS.update().where(c.job == job, c.slot == _utc(slot), sa.or_(
                        c.status == "failed", sa.and_(c.status == "running", c.started_at < now - stale)))
                    .values(worker=row["worker"], status="running", started_at=now, finished_at=None, error=None)
                    .returning(c.id)).scalar_one_or_none()
        if claimed is None:
            return None
        with self._using("claim a run"), self.engine.begin() as conn:  # two workers claiming two slots at once
            if conn.execute(going.where(c.id != claimed).limit(1)).first() is None:
                return claimed
            conn.execute(RUNS.update().where(c.id == claimed).values(
                status="skipped", finished_at=datetime.now(UTC), error="another run of the job was still going"))
        return None

    def finish_run(self, run_id: int, status: str, summary: dict | None = None, error: str | None = None) -> None:
        """Log how a run ended: ``status`` (ok, failed), what it did and, where it failed, why."""
        if status not in RUN_STATES:
            raise ValueError(f"a run's status is one of {RUN_STATES}, not {status!r}")
        with self._using("log a run"), self.engine.begin() as conn:
            conn.execute(RUNS.update().where(RUNS.c.id == run_id).values(
                status=status, finished_at=datetime.now(UTC), error=None if error is None else error[:1000],
                summary=None if summary is None else json.dumps(summary, default=str)))

    def runs(self, job: str | None = None, limit: int | None = None) -> list[dict]:
        """The service's runs (of one job), latest first, each with its summary read back."""
        query = sa.select(RUNS).order_by(RUNS.c.started_at.desc(), RUNS.c.id.desc()).limit(limit)
        if job is not None:
            query = query.where(RUNS.c.job == job)
        with self._using("read runs"), self.engine.connect() as conn:
            return [{**self._row(row), "summary": json.loads(row.summary) if row.summary else None}
                    for row in conn.execute(query)]

    def last_runs(self, jobs: Iterable[str], status: str | None = None) -> dict[str, dict]:
        """Per job, its latest run that is not skipped (with ``status``, the latest with it)."""
        out = {}
        for job in jobs:
            query = sa.select(RUNS).where(RUNS.c.job == job, RUNS.c.status == status if status
                                          else RUNS.c.status != "skipped")
            query = query.order_by(RUNS.c.started_at.desc(), RUNS.c.id.desc()).limit(1)
            with self._using("read runs"), self.engine.connect() as conn:
                row = conn.execute(query).first()
            if row is not None:
                out[job] = {**self._row(row), "summary": json.loads(row.summary) if row.summary else None}
        return out
