"""Watching published forecasts come true: outcomes joined to the ledger, live calibration, drift."""
