"""The one place Slipcast's configuration lives.

Settings come from a profile file (``core/profiles/local.yaml`` by default, ``profiles/cluster.yaml``
or any path via ``SLIPCAST_PROFILE``), overridden by environment variables prefixed
``SLIPCAST_`` with ``__`` between nested names (``SLIPCAST_SERVING__PORT=9000``).
``MLFLOW_TRACKING_URI`` overrides the tracking location as MLflow users expect.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import AwareDatetime, BaseModel, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from slipcast.core.vocabulary import Tracker

PROFILES_DIR = Path(__file__).parent / "profiles"  # shipped inside the package, wheel or checkout


class ImportSettings(BaseModel):
    """How importers map tracker vocabularies onto the canonical one."""

    status_categories: dict[str, list[str]] = Field(
        description="Canonical status category -> tracker status names (case-insensitive)."
    )
    link_kinds: dict[str, list[str]] = Field(
        description="Canonical link kind -> tracker link type names (case-insensitive)."
    )
    jira_story_points_fields: list[str] = Field(
        description="Jira custom fields that may hold story points, first non-null wins."
    )
    jira_sprint_fields: list[str] = Field(description="Jira custom fields that hold sprints.")
    azure_devops_points_fields: list[str] = Field(
        description="Azure DevOps fields that may hold an estimate (Agile's Story Points, Scrum's Effort, CMMI's "
                    "Size), first non-null wins.")
    fallback_encoding: str = Field(
        description="Encoding tried when a file is not UTF-8; the import reports every such file."
    )


class FeatureSettings(BaseModel):
    """The as-of schedule, the label definition and feature windows."""

    span_fractions: list[float] = Field(description="As-of points as shares of the planned span.")
    every_n_days: int | None = Field(description="Extra as-of points every N days, or none.")
    grace_days: float = Field(description="Grace period after the due date before a slip counts.")
    throughput_weeks: int = Field(description="Weeks of project throughput history used.")
    monte_carlo_runs: int = Field(description="Simulations per snapshot for the Monte Carlo feature.")
    monte_carlo_max_weeks: int = Field(
        gt=0, description="Weeks the Monte Carlo feature simulates at most; a milestone due later gets the "
                          "chance of finishing within them.")
    seed: int = Field(description="Seed for the Monte Carlo feature.")
    min_history_weeks: int = Field(
        description="Weeks of project history below which a forecast says 'insufficient history'."
    )
    engine: Literal["pandas", "spark"] = Field(
        description="Where `slipcast features` runs: one pandas process, or per project on Spark.")
    bucket_events: int = Field(
        gt=0, description="Events per bucket of whole projects the pandas engine aims at: it builds one bucket at "
                          "a time, so its peak memory follows the largest bucket (docs/architecture.md).")
    spark_master: str = Field(description="Spark master URL for the spark engine (local[2]: this machine).")
    spark_partitions: int = Field(gt=0, description="Buckets of whole projects the spark engine maps over.")
    spark_conf: dict[str, str] = Field(default_factory=dict, description="Extra Spark settings for the session.")


class SearchPoint(BaseModel):
    """One setting of a model candidate that its inner folds may choose (``training.fitting``)."""

    params: dict[str, int | float] = Field(
        default_factory=dict, description="Parameters of the candidate's estimator (its `model` step).")
    calibrated: bool = Field(
        True, description="Fitted on the earlier rows and calibrated on the later ones; else fitted on every row.")

    def describe_params(self) -> str:
        """The parameters as ``C=0.01, `` (empty when there are none)."""
        return "".join(f"{k}={v:g}, " for k, v in self.params.items())

    def __str__(self) -> str:
        return self.describe_params() + ("calibrated" if self.calibrated else "uncalibrated, fitted on every row")


class TrainingSettings(BaseModel):
    """Backtest and candidate settings."""

    accept_final_state: bool = Field(
        False, description="Train on a history whose export held final states only (no changelog: labels and "
                           "features not point in time); the model is marked so in MLflow and in every answer.")
    candidates: list[str] = Field(description="Candidates backtested, baselines included.")
    folds: int = Field(description="Rolling-origin folds in the backtest.")
    first_cutoff_quantile: float = Field(
        description="Share of labelled history (by time) before the first fold's cutoff."
    )
    max_iter: int = Field(description="Boosting iterations of the gradient-boosting candidate.")
    monotone: bool = Field(
        True, description="Hold gradient boosting monotone in the features whose direction the domain fixes "
                          "(more done never raises risk, more work left never lowers it, more time left never "
                          "raises it; docs/features.md, \"Monotone features\").")
    min_train_rows: int = Field(description="Fewest labelled rows a fold may train on.")
    min_train_positives: int = Field(description="Fewest slipped and on-time rows a fold needs.")
    min_improvement: float = Field(
        description="Brier score by which a challenger must beat the champion to take the alias."
    )
    calibration_share: float = Field(
        gt=0, lt=1, description="Share of a model's training rows, the latest, kept to calibrate it.")
    calibration_half_lives: list[float | None] = Field(
        description="Recency weightings a calibration may choose from: each a half-life as a share of the "
                    "calibration rows' time span (null: every row weighs the same). Chosen per fit by Brier "
                    "on the later half of those rows (docs/architecture.md, \"Honest evaluation\").")
    search: dict[str, list[SearchPoint]] = Field(
        default_factory=dict,
        description="Per model candidate, the settings its inner forward folds choose from (the first where "
                    "history is too short to split); one point: no search (docs/architecture.md, \"Model search\").")
    search_folds: int = Field(3, ge=2, description="Inner forward folds a search scores each point on.")
    search_rows: int = Field(
        20000, ge=1, description="The latest labelled rows of a fit its search looks at (a bound on its cost; "
                                 "a small tracker's search sees every row).")
    bootstrap_rounds: int = Field(description="Bootstrap resamples over milestones for intervals.")
    leak_auc: float = Field(description="Single-feature AUC at or above which a leak is flagged.")
    seed: int = Field(description="Seed for every random choice in training.")
    stale_run_minutes: float = Field(
        gt=0, description="A RUNNING run without a heartbeat for this long was killed: the next training marks it FAILED.")
    experiment_prefix: str = Field(description="MLflow experiment name is prefix + target.")
    model_prefix: str = Field(description="Registered model name is prefix + target.")


class MonitoringSettings(BaseModel):
    """``slipcast monitor``: the published forecasts against their outcomes, and drift."""

    min_outcomes: int = Field(30, ge=1, description="Fewest forecasts with known outcomes before a threshold is judged.")
    max_ece: float = Field(0.10, gt=0, description="Live calibration error above which the monitor fails.")
    min_brier_skill: float = Field(0.0, description="Live Brier skill against the base rate below which it fails.")
    max_psi: float = Field(0.25, gt=0, description="Population stability index of a feature above which it fails.")
    drift_days: float = Field(28, gt=0, description="The latest days of published forecasts compared with training.")
    judge_days: float = Field(182, gt=0, description="Thresholds are judged on the serving model's forecasts whose "
                                                    "outcomes became known within these latest days.")
    report_dir: Path = Field(Path("work/monitor"), description="Where `slipcast monitor` writes its report; the "
                                                                "service shows the latest figures from there.")


class SyncSettings(BaseModel):
    """The bounds of one ``slipcast sync``: whatever a tracker answers, a sync ends within them
    (docs/architecture.md, "What a tracker can make Slipcast do")."""

    deadline_seconds: float = Field(
        21600, gt=0, description="A sync still fetching after this long ends with an error, its store as it was.")
    max_pages: int = Field(
        200000, ge=1, description="Most answers (pages) one sync may fetch; a large real site needs a few "
                                  "thousand (100 issues a page, a changelog page per long history).")
    request_seconds: float = Field(
        300, gt=0, description="Most time one answer may take from request to its last byte, however steadily "
                               "it trickles in.")
    idle_seconds: float = Field(
        30, gt=0, description="Most time a connection may stay silent (connect, or between two reads).")


class TrackerSettings(BaseModel):
    """Which tracker a sync reads, and where: what ``slipcast sync <tracker> ...`` is given on its
    command line, and ``serving.sync`` in the settings (``ingest.connectors.trackers``)."""

    tracker: Tracker = Field(description="The tracker synced from: jira, github, azure-devops or linear.")
    url: str | None = Field(
        None, description="jira: the site's base URL (https://acme.atlassian.net); github: the API's base URL "
                          "(GitHub Enterprise: https://HOST/api/v3; default https://api.github.com); linear: the "
                          "API's origin (default https://api.linear.app).")
    repo: str | None = Field(None, description="github: the repository, OWNER/NAME.")
    jql: str | None = Field(None, description="jira: which issues (default: every issue the credential can see).")
    flavour: Literal["cloud", "datacenter"] = Field("cloud", description="jira: Cloud or Data Center.")
    pulls: bool = Field(False, description="github: take pull requests as tickets too.")
    org: str | None = Field(None, description="azure-devops: the organization's URL (https://dev.azure.com/acme).")
    project: str | None = Field(None, description="azure-devops: the project's name.")
    team: str | None = Field(None, description="azure-devops: a team whose iteration settings date the sprints; "
                                               "linear: one team's issues, by its key.")


class AutoSyncSettings(TrackerSettings):
    """The service keeping its store current (``slipcast serve --sync``): every ``interval_seconds``
    one worker, claimed through the ledger, syncs the store incrementally and runs the monitor, and
    once a day ``retrain --if-needed`` (docs/architecture.md, "A service that keeps itself current")."""

    enabled: bool = Field(True, description="Sync in the service; false keeps the block but syncs nothing.")
    interval_seconds: float = Field(900, gt=0, description="Seconds between two syncs (each a slot of this length "
                                                           "that one worker claims).")
    retrain_hour: int | None = Field(
        3, ge=0, le=23, description="The UTC hour from which `retrain --if-needed` runs once a day (at the first "
                                    "tick at or after it); null: never.")
    run_timeout_seconds: float = Field(
        21600, gt=0, description="A monitor or retrain still running after this long is stopped; a run still marked "
                                 "running after this long (its worker killed) no longer holds its slot.")


class EvaluationSettings(BaseModel):
    """``slipcast eval-real``: the public datasets and the protocols run on them."""

    shared_data_dir: Path = Field(description="The public datasets (never copied into the repository).")
    results_file: Path = Field(description="The Markdown results page; plots and tables go beside it.")
    paper_folds: int = Field(description="Interleaved folds of the TSE 2017 protocol.")
    forward_folds: int = Field(description="Rolling-origin folds of the forward-only protocol.")
    forward_first_share: float = Field(gt=0, lt=1, description="Share of rows before the first cutoff.")
    embargo_days: float = Field(
        ge=0, description="Issues opened this close before a cutoff are left out of its training set "
                          "(their outcome may not have been known yet).")
    value_leak_auc: float = Field(
        description="Cross-validated single-feature tree AUC at or above which a column is flagged.")


METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})  # cloud metadata services
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200"))  # beside link-local


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address ``host`` spells, in any form a resolver takes (``2852039166``, ``0xa9.0xfe.0xa9.0xfe``,
    an IPv4-mapped IPv6 address); None for a name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not host or any(c not in "0123456789abcdefx." for c in host):
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def webhook_address_problem(url: str, allow_link_local: bool) -> str | None:
    """Why an alert must not be sent to (or link to) ``url``, or None: only http and https, and no
    link-local or cloud metadata address (where a host's credentials are handed out) unless
    ``allow_link_local`` (docs/architecture.md, "Alerts")."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http or https URL with a host"
    if allow_link_local:
        return None
    host = parts.hostname.rstrip(".").lower()
    address = _address(host)
    if host in METADATA_HOSTS or address in METADATA_ADDRESSES or (address is not None and address.is_link_local):
        return (f"{url!r} reaches a link-local or cloud metadata address; set allow_link_local where a receiver "
                "really is there")
    return None


class AlertSubscription(BaseModel):
    """A webhook told when an open milestone's risk rises, or a program's chance drops (``serving.alerts``)."""

    url: str = Field(description="Where the JSON event is POSTed (http or https).")
    secret_env: str = Field(description="The environment variable holding the HMAC-SHA256 signing secret "
                                        "(never the secret itself: settings are logged and shown).")
    band_rise: bool = Field(True, description="Alert when a milestone's risk band rises.")
    min_points: float | None = Field(
        None, gt=0, le=1, description="Alert when its probability moved by at least this much (0.15: 15 points) "
                                      "within `within_days`; None: not on moves.")
    within_days: float = Field(7, gt=0, description="The window a move is measured over.")
    program_drop_points: float | None = Field(
        None, gt=0, le=1, description="Alert on programs too: when a program's chance of landing fell by at least "
                                      "this much (0.1: 10 points) within `within_days`, or (with `band_rise`) its "
                                      "risk band rose; None: no program alerts.")
    page_url: str | None = Field(None, description="Base of the link to the milestone (or program) in the event "
                                                   "(e.g. https://slipcast.example.com/page).")
    allow_link_local: bool = Field(
        False, description="Take a `url` or `page_url` on a link-local address (169.254.0.0/16, fe80::/10) or a cloud "
                           "metadata address; refused at load otherwise.")

    @model_validator(mode="after")
    def _reachable(self) -> AlertSubscription:
        """Refuse, at load, an address an alert must never go to (``webhook_address_problem``)."""
        for name in ("url", "page_url"):
            value = getattr(self, name)
            problem = None if value is None else webhook_address_problem(value, self.allow_link_local)
            if problem:
                raise ValueError(f"{name}: {problem}")
        return self


class ProgramSpec(BaseModel):
    """What a program is: a set of milestones that lands when its last one does (named by its id
    elsewhere: ``ProgramDeclaration``, or the API's path)."""

    name: str | None = Field(None, max_length=500, description="What people call it (the id where none is given).")
    milestones: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, description="The milestone ids it needs.")
    target_at: AwareDatetime | None = Field(
        None, description="When it must land: every milestone done by then; None: each by its own due date.")

    @model_validator(mode="after")
    def _each_once(self) -> ProgramSpec:
        twice = sorted(m for m, n in Counter(self.milestones).items() if n > 1)
        if twice:
            raise ValueError(f"milestones named more than once: {twice}")
        return self


class ProgramDeclaration(ProgramSpec):
    """A program named in the settings or through the API (``PUT /v1/programs/{id}``)."""

    program_id: str = Field(min_length=1, max_length=200, description="The program's id in the API.")


class DependencyDeclaration(BaseModel):
    """A dependency between two milestones the tracker's links do not show."""

    blocker: str = Field(min_length=1, max_length=200, description="The milestone that must finish first.")
    dependent: str = Field(min_length=1, max_length=200, description="The milestone that cannot finish before it.")

    @field_validator("dependent")
    @classmethod
    def _two_milestones(cls, dependent: str, info: ValidationInfo) -> str:
        if dependent == info.data.get("blocker"):
            raise ValueError(f"{dependent!r} cannot wait on itself: a dependency joins two milestones")
        return dependent


class ProgramSettings(BaseModel):
    """Programs across teams and their joint forecast (docs/architecture.md, "Programs")."""

    from_epics: bool = Field(True, description="An epic or initiative whose children sit in milestones of at least "
                                               "two projects is a program.")
    from_shared_names: bool = Field(True, description="One milestone name in at least two projects (a fix version, "
                                                      "a GitHub milestone title) is a program, where their due dates "
                                                      "lie within `shared_name_days` of one another.")
    shared_name_days: float = Field(
        45, gt=0, description="Milestones of one name are one program where each is due within this many days of "
                              "the next (\"1.0\" of two unrelated projects years apart is not a program).")
    declared: list[ProgramDeclaration] = Field(default_factory=list, description="Programs declared here.")
    dependencies: list[DependencyDeclaration] = Field(
        default_factory=list, description="Dependencies between milestones declared here (beside the links').")
    draws: int = Field(10_000, ge=100, le=1_000_000, description="Monte Carlo draws of a program forecast.")
    seed: int = Field(11, description="Seed of the program Monte Carlo (same state, same answer).")
    horizon_days: int = Field(
        365, ge=28, description="Days after as_of a milestone's completion is forecast over; later is drawn beyond.")
    ripple_days: int = Field(14, gt=0, description="The slip a program's ripple asks about: each milestone late by "
                                                   "this many days.")
    default_lag_days: float = Field(
        1.0, ge=0, description="Days a dependent needs after its blocker finishes, where the history shows no "
                               "finished dependency to measure it on.")
    lag_quantile: float = Field(
        0.1, ge=0, le=1, description="The quantile of the history's lags (a dependent ticket done after the ticket it "
                                     "waited on) a dependent milestone is held to after its blocker: a milestone is "
                                     "held by one blocker ticket, whose dependent is often done late for other reasons, "
                                     "so the median overstates the wait (docs/results.md, \"Programs across teams\").")
    max_correlation: float = Field(0.8, ge=0, lt=1, description="The most the copula's correlation of two "
                                                                "milestones may be.")
    history_draws: int = Field(
        2000, ge=100, le=1_000_000, description="Monte Carlo draws of each day of a program's history (fewer than "
                                                "`draws`: a history draws once per day).")
    history_context_days: int = Field(
        7, ge=1, le=28, description="A program's history reads the dependency graph, the correlations and the lag "
                                    "as known at the start of each period of this many days (counted from the "
                                    "epoch), not every day: each read costs about 0.2 s.")


class PublishSettings(BaseModel):
    """Forecasts written back into the tracker (``slipcast publish``; ``serving.publish`` runs it
    after each refresh): each open milestone's forecast in a block of its fix version's or
    milestone's description (docs/architecture.md, "Publishing into the tracker")."""

    tracker: Literal["jira", "github"] = Field(description="Which tracker the store was synced from.")
    url: str = Field(description="Jira: the site's base URL (https://acme.atlassian.net); GitHub: the API's "
                                 "(https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise).")
    repo: str | None = Field(None, description="GitHub: OWNER/NAME, as `slipcast sync github --repo` takes it.")
    flavour: Literal["cloud", "datacenter"] = Field("cloud", description="Jira: Cloud (JIRA_EMAIL, JIRA_API_TOKEN) "
                                                                          "or Data Center (JIRA_PAT).")
    min_points: float = Field(
        0.05, gt=0, le=1, description="A block is rewritten only when its risk band changed, or its probability "
                                      "moved by at least this much (0.05: 5 points), or a number came or went.")
    page_url: str | None = Field(None, description="Base of the link to the milestone's page in the block "
                                                   "(e.g. https://slipcast.example.com/page); None: "
                                                   "serving.page_url, else no link.")
    property_key: str = Field(
        "slipcast.forecasts", pattern=r"^[A-Za-z0-9._-]{1,255}$",
        description="Jira: the project entity property that holds the published numbers of the project's versions "
                    "for other tools to read.")

    @model_validator(mode="after")
    def _complete(self) -> PublishSettings:
        if self.tracker == "github" and (self.repo is None or self.repo.count("/") != 1):
            raise ValueError("publishing to GitHub needs repo: OWNER/NAME")
        for name in ("url", "page_url"):
            value = getattr(self, name)
            if value is not None and urlsplit(value).scheme not in ("http", "https"):
                raise ValueError(f"{name}: {value!r} is not an http or https URL")
        return self


class ServingSettings(BaseModel):
    """The forecast service."""

    host: str
    port: int = Field(ge=1, le=65535)
    workers: int = Field(ge=1, description="Worker processes; above 1, gunicorn runs uvicorn workers.")
    model_threads: int = Field(
        ge=1, description="OpenMP threads one prediction may use. 1 suits a web worker: a forecast scores a few "
                          "rows, which a thread team only slows down, and concurrency comes from workers.")
    gc_thresholds: tuple[int, int, int] = Field(
        description="Python's garbage-collector thresholds in the service. A request of many tickets and events "
                    "creates objects by the hundred thousand; at Python's default (700, 10, 10) collections "
                    "during parsing cost as much as the parsing.")
    api_keys: list[str] = Field(default_factory=list, description="Empty: auth off.")
    cors_origins: list[str] = Field(default_factory=list)
    page_url: str | None = Field(
        None, description="Base of the links to the page in the assistant's answers (`/mcp`, `slipcast mcp`), e.g. "
                          "https://slipcast.example.com/; None: the address a request came to (HTTP), or "
                          "http://host:port/ of these settings (stdio).")
    max_body_bytes: int = Field(description="Requests larger than this get 413.")
    max_batch: int = Field(description="Most milestones in one batch request.")
    max_batch_rows: int = Field(
        gt=0, description="Most tickets, events and links in one batch request, all items together.")
    reload_seconds: float = Field(description="How often the service checks for a new champion.")
    store: str | None = Field(
        None, description="Canonical tables the live state is built from (`slipcast serve --store`): a folder, or "
                          "a URI pyarrow's filesystems open (s3://bucket/path?endpoint_override=..., gs://, "
                          "hdfs://; credentials from the environment); None: the store-backed endpoints answer 503.")
    ledger_url: str | None = Field(
        "sqlite:///work/ledger.db", description="Where every published forecast is recorded (SQLAlchemy URL: "
                                                "sqlite:///path, relative to home, or postgresql+psycopg://...); "
                                                "None: nothing is recorded.")
    as_of: AwareDatetime | None = Field(
        None, description="Serve the store as of this fixed time instead of the clock's now (replays, demos of a "
                          "simulated history, benchmarks).")
    build_niceness: int | None = Field(
        19, ge=0, le=19, description="The live state is built in a child process at this niceness (0 to 19), so that "
                                     "requests keep the CPU while it builds; null builds it in the serving process.")
    refresh_seconds: float = Field(
        3600, gt=0, description="The live state is rebuilt at least this often (and whenever the store or a "
                                "champion changes, checked every reload_seconds).")
    model_source: str = Field(description="'registry' (fallback to export) or 'export' only.")
    top_drivers: int = Field(description="Drivers returned per forecast.")
    risk_bands: dict[str, float] = Field(description="Band name -> lower probability bound.")
    alerts: list[AlertSubscription] = Field(
        default_factory=list, description="Webhooks told when an open milestone's risk rises (needs serving.store "
                                          "and the ledger, which sends each alert once however many workers saw it).")
    alert_queue: int = Field(
        1000, ge=1, description="Alerts waiting for delivery at most: they are delivered in the background, one at "
                                "a time; an alert claimed while the queue is full is dropped, counted and logged.")
    publish: PublishSettings | None = Field(
        None, description="Publish the forecasts into the tracker after each refresh (opt-in; a failed publish "
                          "is logged and recorded, never fails the refresh); None: off.")
    sync: AutoSyncSettings | None = Field(
        None, description="The tracker the service syncs its store from on a schedule (`slipcast serve --sync`; "
                          "needs a store folder and the ledger); None: the store is kept current from outside.")

    @model_validator(mode="after")
    def _one_page(self) -> ServingSettings:
        """The page's base given once (``page_url``) also links what is published into the tracker."""
        if self.publish is not None and self.publish.page_url is None and self.page_url is not None:
            self.publish = self.publish.model_copy(update={"page_url": self.page_url})
        return self


class Settings(BaseSettings):
    """Everything configurable in Slipcast, in one typed object."""

    model_config = SettingsConfigDict(env_prefix="SLIPCAST_", env_nested_delimiter="__")

    profile: str = "local"
    home: Path = Field(default_factory=Path.cwd,
                       description="Where relative paths start (SLIPCAST_HOME); the current directory by default.")
    data_dir: Path = Field(description="Canonical tables the demo and training use by default.")
    work_dir: Path = Field(description="Where generated features, reports and scratch files go, and the live "
                                       "state the service's workers share (`live/`).")
    models_dir: Path = Field(
        description="Exported champion models: per target, the registry's model folder with slipcast.json.")
    tracking_uri: str = Field(description="MLflow tracking URI.")
    artifact_location: str | None = Field(
        default=None, description="Artifact root for new experiments; None: the server's default."
    )
    imports: ImportSettings
    features: FeatureSettings
    training: TrainingSettings
    serving: ServingSettings
    evaluation: EvaluationSettings
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    programs: ProgramSettings = Field(default_factory=ProgramSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _ProfileSource(settings_cls))

    def resolve(self, path: Path) -> Path:
        """A configured path, relative ones taken from ``home``."""
        return path if path.is_absolute() else self.home / path

    def store_location(self, location: str | Path) -> str:
        """A store: a URI (``s3://...``) as given, a folder made absolute (relative ones from ``home``)."""
        text = str(location)
        return text if "://" in text else str(self.resolve(Path(text)))

    def sqlite_path(self, uri: str | None = None) -> Path | None:
        """The SQLite file of an embedded database at ``uri`` (default: the tracking store),
        relative to ``home``, also in SQLite's URI form (``sqlite:///file:PATH?mode=ro&uri=true``);
        None for a database on a server."""
        uri = self.tracking_uri if uri is None else uri
        prefix = "sqlite:///"
        if not uri.startswith(prefix):
            return None
        path = uri[len(prefix):]
        if path.startswith("file:"):
            path = path.removeprefix("file:").split("?", 1)[0]
        return self.resolve(Path(path))

    def resolved_uri(self, uri: str | None = None) -> str:
        """``uri`` (default: the tracking store's) with an embedded database's path made absolute
        (a URI form keeps its ``file:`` and its options)."""
        uri = self.tracking_uri if uri is None else uri
        path = self.sqlite_path(uri)
        if path is None:
            return uri
        rest = uri.removeprefix("sqlite:///")
        if rest.startswith("file:"):
            options = rest.partition("?")[2]
            return f"sqlite:///file:{path}" + (f"?{options}" if options else "")
        return f"sqlite:///{path}"


class _ProfileSource(PydanticBaseSettingsSource):
    """Reads the YAML profile named by SLIPCAST_PROFILE (a name or a path)."""

    def get_field_value(self, field, field_name):  # pragma: no cover - unused by pydantic here
        return None, field_name, False

    def __call__(self) -> dict:
        return load_profile(os.environ.get("SLIPCAST_PROFILE", "local"))


def load_profile(name: str) -> dict:
    """The raw values of a profile: a name in ``slipcast/profiles`` or a YAML path."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else PROFILES_DIR / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"profile {name!r} not found (known: {known}, or give a .yaml path)")
    values = yaml.safe_load(path.read_text()) or {}
    base = values.pop("extends", None)
    if base:
        values = _deep_merge(load_profile(base), values)
    tracking = os.environ.get("MLFLOW_TRACKING_URI")
    if tracking:
        values["tracking_uri"] = tracking
    return values


def _deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` after env changes)."""
    return Settings()
