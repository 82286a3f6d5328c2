"""The service's state kept from a store: the portfolio of open milestones, built once per
refresh and shared between workers, the forecast ledger, alerts, backfill and metrics."""
