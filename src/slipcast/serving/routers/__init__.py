"""The API's routes, one router per resource: forecasts, the model, operations."""
