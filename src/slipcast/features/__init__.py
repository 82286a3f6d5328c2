"""Canonical tables, importers, synthetic history and point-in-time features.

This package knows nothing of training or serving.
"""
