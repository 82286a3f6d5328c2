"""The floor ``make bench`` sets beside the live read API: a bare FastAPI endpoint returning a
pre-encoded body of the same size (``FLOOR_BODY_BYTES``), run under gunicorn with uvicorn workers."""

from __future__ import annotations

import os

from fastapi import FastAPI, Response

BODY = b'{"x": "' + b"a" * max(0, int(os.environ.get("FLOOR_BODY_BYTES", "2000")) - 9) + b'"}'
app = FastAPI()


@app.get("/floor")
def floor() -> Response:
    return Response(BODY, media_type="application/json")
