"""Prometheus metrics of one app instance: requests, latencies, forecast distribution, and the
slip probability of each open milestone of the live state.

With several worker processes (``slipcast serve --workers N``), PROMETHEUS_MULTIPROC_DIR is
set and every worker writes its counters and histograms there; any worker's /metrics answers for
all of them. The milestones' gauges are not written there: that mode keeps a series once set,
though its milestone has closed. Every worker holds the same live state, so the one answering
gives them from its own (``OpenMilestones``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector


class Metrics:
    """The service's counters and histograms, in a registry of its own."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("slipcast_requests_total", "HTTP requests", ["path", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram("slipcast_request_seconds", "Request latency", ["path"], registry=self.registry,
                                 buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.forecasts = Histogram("slipcast_forecast_probability", "Slip probabilities served", ["target"],
                                   registry=self.registry, buckets=tuple(i / 10 for i in range(1, 11)))
        self.states = Counter("slipcast_forecasts_total", "Forecasts by state", ["status"], registry=self.registry)
        self.live_states = Counter("slipcast_live_states_total", "Live states swapped in, by whether this worker "
                                   "built it or read it as another worker here built it", ["source"],
                                   registry=self.registry)
        self.milestones = OpenMilestones()
        self.registry.register(self.milestones)

    def publish(self, milestones) -> None:
        """The live state's open milestones, whose gauges /metrics gives from now on."""
        self.milestones.milestones = list(milestones)

    def render(self) -> bytes:
        """The exposition text: this process's metrics, or every worker's in multiprocess mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            registry.register(self.milestones)
            return generate_latest(registry)
        return generate_latest(self.registry)


class OpenMilestones(Collector):
    """``slipcast_milestone_slip_probability{project,milestone}``: the live state's forecast of
    each open milestone with a probability, for Grafana's own alerts; a milestone that closed has
    none."""

    def __init__(self):
        self.milestones: list = []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("slipcast_milestone_slip_probability",
                                   "Slip probability of each open milestone (the live state's latest refresh)",
                                   labels=["project", "milestone"])
        for m in self.milestones:
            if m.probability is not None:
                family.add_metric([m.project, m.milestone_id], m.probability)
        yield family


class Measured:
    """ASGI middleware counting every HTTP request by route, method and status, with its
    latency (plain ASGI: no extra task or stream per request)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")  # set by the router on this same scope
            path = route.path if route is not None else "unmatched"
            self.metrics.requests.labels(path, scope["method"], str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - started)
