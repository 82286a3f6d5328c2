"""Point-in-time features and labels: timelines, snapshots, the training-set pipeline and its
engines, a store's history coded once, and the features of a state sent now.

This package reads canonical tables (``ingest``) and knows nothing of training or serving.
"""
