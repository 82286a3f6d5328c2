"""The service's error responses: one 422 shape for every bad value.

Domain code raises ``slipcast.core.errors.FieldError`` with the value's location; request
validation raises pydantic's errors. Both become FastAPI's 422 shape,
``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``. A validation error whose input
cannot be written as JSON (NaN, infinity, a lone surrogate), is a whole object or column (a
table of a columns request: echoing it would cost as much as the request), or is text longer
than ``ECHO_LIMIT`` (a whole body sent without a JSON content type, which FastAPI validates as
one string), is answered without echoing it.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from slipcast.core.errors import FieldError

ECHO_LIMIT = 200  # characters (or bytes) of a text input a 422 echoes back; longer ones are left out


def _encodable(error: dict) -> dict:
    """The error as FastAPI renders it, less the echoed input where that is not valid JSON, is a
    container, or is long text."""
    given = error.get("input")
    if isinstance(given, (dict, list)) or (isinstance(given, (str, bytes)) and len(given) > ECHO_LIMIT):
        error = {k: v for k, v in error.items() if k != "input"}
    try:
        encoded = jsonable_encoder(error)
        json.dumps(encoded, allow_nan=False, ensure_ascii=False).encode("utf-8")  # as the response renders it
        return encoded
    except (ValueError, UnicodeEncodeError):
        return jsonable_encoder({k: v for k, v in error.items() if k not in ("input", "ctx")})


async def field_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FieldError)
    return JSONResponse(status_code=422, content={"detail": [
        {"loc": list(exc.loc), "msg": exc.message, "type": "value_error"}]})


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(status_code=422, content={"detail": [_encodable(e) for e in exc.errors()]})


def install(app: FastAPI) -> None:
    """Register the service's exception handlers on ``app``."""
    app.add_exception_handler(FieldError, field_error)
    app.add_exception_handler(RequestValidationError, validation_error)
