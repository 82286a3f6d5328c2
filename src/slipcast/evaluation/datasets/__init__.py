"""Adapters for public datasets their authors already reduced to features: one module each,
kept apart from the canonical importers in ``ingest/importers``."""
