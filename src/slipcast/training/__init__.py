"""Backtests, calibrated candidates, MLflow tracking, the guarded champion and its export."""
