"""Forecasts from feature rows, without HTTP: the trusted model, the served probability (the
skill guard and its base rate), the forecast's status and band, drivers, and its records."""
