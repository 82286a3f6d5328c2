"""Prometheus metrics of one app instance: requests, latencies, forecast distribution.

With several worker processes (``slipcast serve --workers N``), PROMETHEUS_MULTIPROC_DIR is
set and every worker writes its values there; any worker's /metrics answers for all of them.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector


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

    def render(self) -> bytes:
        """The exposition text: this process's metrics, or every worker's in multiprocess mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
