"""What every read of the live state shares: its ETag, set by every route that answers from a
``Portfolio``, with a 304 where the client's copy is current; and ids that hold any character,
'/' too, told apart from a sub-resource's last segment (docs/architecture.md, "Live state")."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from fastapi import Request, Response

from slipcast.live.portfolio import Portfolio

NOT_MODIFIED: dict[int | str, dict[str, Any]] = {304: {"description": "unchanged since the ETag given in If-None-Match"}}
ENTITY_TAG = re.compile(r'(?:W/)?("[^"]*")')  # a tag, weak or strong, in a list of them


def etag_matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``tag``, as HTTP compares for it (RFC 9110): ``*``
    matches any current answer; otherwise any tag of the list that equals ``tag`` once a weak
    ``W/`` prefix is set aside on either side (the weak comparison)."""
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    return tag.removeprefix("W/") in ENTITY_TAG.findall(if_none_match)


def cached(request: Request, response: Response, state: Portfolio, also: str = "") -> bool:
    """Set the ETag (the state's version, the request's path as sent, its query, and ``also``:
    anything else the answer depends on) and ``Cache-Control: no-cache`` (revalidate every time:
    the answer changes at each refresh); True where the client's copy is current."""
    path = request.scope.get("raw_path") or request.url.path.encode()  # as sent: %2F is not /
    key = f"{state.version}|{path.decode('latin-1')}|{request.url.query}|{also}"
    tag = '"' + hashlib.sha256(key.encode()).hexdigest()[:24] + '"'
    response.headers["ETag"] = tag
    response.headers["Cache-Control"] = "no-cache"
    return etag_matches(request.headers.get("if-none-match"), tag)


def not_modified(response: Response) -> Response:
    """The 304 answer, with the ETag and Cache-Control ``cached`` set."""
    return Response(status_code=304, headers={k: response.headers[k] for k in ("ETag", "Cache-Control")})


def ends_in(request: Request, word: str) -> bool:
    """Whether a path ending in ``/<word>`` asks for that sub-resource (``history``, ``what-if``):
    its last segment is written ``word`` as sent, not the end of an id whose slash was encoded
    (``...%2Fhistory``). Ids hold any character, '/' too (docs/architecture.md, "Live state")."""
    raw = request.scope.get("raw_path")
    return raw is None or raw.rstrip(b"/").rsplit(b"/", 1)[-1] == word.encode()
