"""The forecast API: FastAPI over the champion model and the features/ code."""
