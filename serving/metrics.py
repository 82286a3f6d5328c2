"""Prometheus metrics of one app instance: requests, latencies, forecast distribution."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


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
        return generate_latest(self.registry)
