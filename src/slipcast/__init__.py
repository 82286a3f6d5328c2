"""Slipcast: calibrated forecasts of milestone slip from issue-tracker history."""

__version__ = "0.1.0"
