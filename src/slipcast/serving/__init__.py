"""The HTTP API only: the FastAPI app, its routers, request and response schemas, a request's
state as canonical columns, what-if, and the server-rendered page."""
