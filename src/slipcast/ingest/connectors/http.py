"""An HTTP client for tracker APIs: credentials from the environment, sent to one origin only;
retries that honour the server's rate limits (and a pause before the next request where an answer
asks for one with ``Retry-After``); a sync's bounds (deadline, page budget, a deadline
per answer); and counts of what was moved.

Retries (tenacity) cover dropped connections, 429, 502-504 and a spent rate limit told otherwise
(GitHub's 403, Linear's 400 ``RATELIMITED``), waiting what ``Retry-After``, ``X-RateLimit-Reset`` or
Linear's budget headers say, else exponential backoff with jitter; an answer whose budget headers
say a budget is spent holds the next request until it refills; 401 and 403 stop at once
with an error naming the credential, never its value; any other error answer is reduced to its
status and a short scrubbed message; a redirect is an error, never followed nor read as data
(docs/architecture.md, "Connectors" and "What a tracker can make Slipcast do").
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote

import httpx
from tenacity import RetryCallState, retry, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from slipcast.core.settings import SyncSettings

RETRIED_STATUS = (429, 502, 503, 504)
MAX_WAIT_SECONDS = 60.0
MESSAGE_CHARS = 120  # the most of a tracker's own error message an error repeats
DEFAULT_PORTS = {"http": 80, "https": 443}
CONDITIONAL = ("if-none-match", "if-modified-since")  # a request that asked for a 304
EPOCH_MS = 1e11  # a reset time at or past this is in epoch milliseconds (Linear's)
_CREDENTIAL_TEXT = re.compile(r"(?i)\b(proxy-authorization|authorization|cookie)\b\s*[:=]\s*[^;,\n]*"
                              r"|\b(basic|bearer|token)\s+[\w.~+/=-]+")


class ConnectorError(RuntimeError):
    """A tracker refused or failed a request in a way a retry cannot mend; the message says why."""


class _Retry(Exception):
    def __init__(self, response: httpx.Response):
        super().__init__(f"{response.status_code} from {response.request.url}")
        self.response = response


def basic(user: str, token: str) -> dict[str, str]:
    """The ``Authorization`` header of HTTP Basic auth: Jira Cloud's ``email:token``, Azure DevOps's
    personal access token with an empty user name (``:token``)."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


def segment(value: object) -> str:
    """A value as one segment of a request's path: percent-encoded, ``/`` included."""
    return quote(str(value), safe="")


def parsed(response: httpx.Response) -> object:
    """The JSON an answer holds; an answer that is not JSON is an error naming the request."""
    try:
        return response.json()
    except ValueError:
        raise ConnectorError(f"{_shown(response.request)}: {response.status_code} but the answer is not JSON") from None


def _origin(url: httpx.URL) -> str:
    """scheme://host:port, the port written out even where it is the scheme's default."""
    return f"{url.scheme}://{url.host}:{url.port or DEFAULT_PORTS.get(url.scheme, 0)}"


def origin(url: str) -> str:
    """A URL's origin as reports and the ledger name a tracker: scheme://host:port, no user,
    password or path."""
    return _origin(httpx.URL(url))


def _shown(request: httpx.Request) -> str:
    """A request as errors name it: its method and path, without the query, cut short."""
    path = request.url.raw_path.split(b"?")[0].decode("ascii", "replace")
    return f"{request.method} {path[:160]}"


def _rate_limited(response: httpx.Response) -> bool:
    """GitHub answers a spent rate limit (primary or secondary) with 403 and says so in headers;
    Linear answers 400 with a GraphQL error whose ``extensions.code`` is ``RATELIMITED``."""
    if response.status_code == 403:
        return response.headers.get("x-ratelimit-remaining") == "0" or "retry-after" in response.headers
    if response.status_code == 400:
        return "RATELIMITED" in _graphql_codes(response)
    return False


def _graphql_codes(response: httpx.Response) -> list[str]:
    """The ``extensions.code`` of each GraphQL error an answer holds (none for any other answer)."""
    try:
        payload = response.json()
    except ValueError:
        return []
    errors = payload.get("errors") if isinstance(payload, dict) else None
    return [str(e["extensions"].get("code")) for e in errors if isinstance(e, dict)
            and isinstance(e.get("extensions"), dict)] if isinstance(errors, list) else []


def _server_wait(state: RetryCallState) -> float:
    """What the server asked for (Retry-After seconds or date, X-RateLimit-Reset), else backoff:
    also when what it said is no usable wait (negative, not a number, not a date)."""
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, _Retry):
        headers, now = exc.response.headers, time.time()
        wait = _retry_after(headers.get("Retry-After", ""), now)
        if wait is None:
            reset = _reset_at(headers.get("X-RateLimit-Reset", ""))
            wait = None if reset is None else max(reset - now, 0.0)
        if wait is None:
            wait = budget_wait(headers, now, spent_only=False)
        if wait is not None:
            return min(wait, MAX_WAIT_SECONDS)
    return wait_exponential_jitter(initial=0.5, max=MAX_WAIT_SECONDS)(state)


def budget_wait(headers: httpx.Headers, now: float, spent_only: bool = True) -> float | None:
    """Seconds until the budgets Linear names refill (``X-RateLimit-Requests-Remaining`` and
    ``-Reset``; ``X-RateLimit-Complexity-Remaining`` and ``-Reset``, a budget spent when less is left
    than the answer's ``X-Complexity`` cost): the latest reset of a spent budget, or with
    ``spent_only`` False and none said spent, of any budget named; None when none is."""
    named = []
    for budget, cost in (("Requests", "1"), ("Complexity", headers.get("X-Complexity", "1"))):
        reset = _reset_at(headers.get(f"X-RateLimit-{budget}-Reset", ""))
        left, need = (headers.get(f"X-RateLimit-{budget}-Remaining", ""), cost)
        if reset is not None:
            spent = left.lstrip("-").isdigit() and need.isdigit() and int(left) < max(int(need), 1)
            named.append((spent, reset))
    chosen = [r for spent, r in named if spent] or ([] if spent_only else [r for _, r in named])
    return max(max(chosen) - now, 0.0) if chosen else None


def _retry_after(value: str, now: float) -> float | None:
    """Seconds a ``Retry-After`` asks for (seconds, or an HTTP date: a past one is now); None
    for anything else (``-5``, ``nan``, ``inf``, ``soon-ish``)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            return max(parsedate_to_datetime(value).timestamp() - now, 0.0)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _reset_at(value: str) -> float | None:
    """When a rate limit resets, as epoch seconds: GitHub sends epoch seconds, Linear epoch
    milliseconds (a number past ``EPOCH_MS``, which epoch seconds reach only in the year 5138),
    Jira Cloud an ISO 8601 time to the minute (``2026-12-01T10:45Z``); anything else is ignored."""
    if value.isdigit():
        return float(value) / 1000 if float(value) >= EPOCH_MS else float(value)
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _secrets(headers: dict[str, str]) -> list[str]:
    """Every form of the credential in ``headers`` an echoing server could give back: the
    header's value (Linear's API key is sent bare), its token and, for Basic, the decoded ``email:token`` and the token."""
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = value.partition(" ")
    found = [value, token]
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(token, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        found += [decoded, decoded.partition(":")[2]]
    return sorted((s for s in found if s), key=len, reverse=True)


def _message(response: httpx.Response, secrets: list[str]) -> str:
    """A short, scrubbed message from an error answer: the first message its JSON gives (Jira's
    ``errorMessages``, GitHub's ``message``, GraphQL's ``errors``), never the body itself; the credential in any form
    ``_secrets`` knows, and anything that looks like a credential header, taken out."""
    try:
        payload = response.json()
    except ValueError:
        return ""
    said: object = None
    if isinstance(payload, dict):
        said = payload.get("message")
        messages = payload.get("errorMessages")
        if not isinstance(said, str) and isinstance(messages, list) and messages:
            said = messages[0]
        errors = payload.get("errors")  # GraphQL's
        if not isinstance(said, str) and isinstance(errors, list) and errors and isinstance(errors[0], dict):
            said = errors[0].get("message")
    if not isinstance(said, str):
        return ""
    for secret in secrets:
        said = said.replace(secret, "[credential]")
    said = _CREDENTIAL_TEXT.sub("[credential]", said)
    said = "".join(c if c.isprintable() else " " for c in said)
    return said if len(said) <= MESSAGE_CHARS else said[:MESSAGE_CHARS - 3] + "..."


class _Deadline(httpx.SyncByteStream):
    """An answer's body, read chunk by chunk (each within the idle timeout) until ``at``
    (``time.monotonic()``): a body still arriving then is an error, however steadily it trickles."""

    def __init__(self, stream: httpx.SyncByteStream, at: float, says: str):
        self._stream, self._at, self._says = stream, at, says

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            if time.monotonic() > self._at:
                raise ConnectorError(self._says)
            yield chunk

    def close(self) -> None:
        self._stream.close()


@dataclass
class Client:
    """One tracker's API at ``base_url`` with ``headers`` carrying the credential, held to
    ``bounds`` from the moment it is made; it sends nothing outside ``base_url``'s origin."""

    base_url: str
    headers: dict[str, str]
    credential: str  # the environment variable(s) the credential came from, for errors
    bounds: SyncSettings = field(default_factory=SyncSettings)
    attempts: int = 6
    requests: int = 0
    bytes: int = 0
    _http: httpx.Client = field(init=False, repr=False)
    _origin: str = field(init=False, repr=False)
    _deadline: float = field(init=False, repr=False)
    _secrets: list[str] = field(init=False, repr=False)
    _resume_at: float = field(init=False, repr=False, default=0.0)  # time.monotonic() the next request may go
    waited: float = 0.0  # seconds spent holding requests (asked to slow down, or a spent budget)

    def __post_init__(self):
        self._http = httpx.Client(base_url=self.base_url.rstrip("/"), headers=self.headers,
                                  timeout=self.bounds.idle_seconds, follow_redirects=False)
        self._origin = _origin(self._http.base_url)
        self._deadline = time.monotonic() + self.bounds.deadline_seconds
        self._secrets = _secrets(self.headers)

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, params: dict | None = None, headers: dict | None = None,
            missing: bool = False) -> httpx.Response:
        """GET a path under ``base_url``, or a full URL of the same origin (a ``Link``); with
        ``missing``, a 404 is an answer (something not there yet), not an error."""
        return self._send(self._http.build_request("GET", path, params=params, headers=headers), missing=missing)

    def post(self, path: str, body: dict, params: dict | None = None) -> httpx.Response:
        return self._send(self._http.build_request("POST", path, params=params, json=body))

    def write(self, method: str, path: str, body: dict, needs: str, params: dict | None = None) -> httpx.Response:
        """A write (``PUT``, ``PATCH``) of ``body`` to a path under ``base_url``, retried as a read
        is; a 403 is an error naming the permission it ``needs``."""
        return self._send(self._http.build_request(method, path, json=body, params=params), needs)

    def said(self, response: httpx.Response) -> str:
        """What an answer's JSON says of an error, short and with the credential taken out."""
        return _message(response, self._secrets)

    def _send(self, request: httpx.Request, needs: str | None = None, missing: bool = False) -> httpx.Response:
        """One request, retried as the module says, answered with a body read within its deadline."""
        if _origin(request.url) != self._origin:
            raise ConnectorError(f"refused a link to another origin ({_origin(request.url)}): the credential in "
                                 f"{self.credential} goes only to {self._origin}")
        shown = _shown(request)

        @retry(retry=retry_if_exception(lambda e: isinstance(e, (_Retry, httpx.TransportError))),
               wait=_server_wait, stop=stop_after_attempt(self.attempts), reraise=True)
        def once() -> httpx.Response:
            self._check_bounds(shown)
            self._hold()
            self.requests += 1
            response = self._http.send(request, stream=True)
            try:
                response.stream = self._read_by(response.stream, shown)
                response.read()
            finally:
                response.close()
            self.bytes += len(response.content)
            if response.status_code in RETRIED_STATUS or _rate_limited(response):
                raise _Retry(response)
            asked = _retry_after(response.headers.get("Retry-After", ""), time.time())  # Azure DevOps delays a
            spent = budget_wait(response.headers, time.time())  # heavy user so; Linear's budgets say they are spent
            wait = max(asked or 0.0, spent or 0.0)
            if wait:  # answered, but asked to slow down
                self._resume_at = time.monotonic() + min(wait, MAX_WAIT_SECONDS)
            return response

        try:
            response = once()
        except _Retry as exc:
            raise ConnectorError(f"{shown}: still {exc.response.status_code} after {self.attempts} tries") from None
        except httpx.TransportError as exc:
            raise ConnectorError(f"{shown}: {type(exc).__name__} after {self.attempts} tries") from None
        if not (missing and response.status_code == 404):
            self._check_status(response, shown, needs)
        return response

    def _hold(self) -> None:
        """Wait as long as the last answer asked: its ``Retry-After``, or until the budgets it said were spent refill."""
        wait = self._resume_at - time.monotonic()
        if wait > 0:
            time.sleep(wait)
            self.waited += wait

    def _check_bounds(self, shown: str) -> None:
        """Refuse a request past the sync's deadline or beyond its page budget."""
        if time.monotonic() > self._deadline:
            raise ConnectorError(f"{shown}: the sync's deadline of {self.bounds.deadline_seconds:g} s passed "
                                 "(sync.deadline_seconds)")
        if self.requests >= self.bounds.max_pages:
            raise ConnectorError(f"{shown}: the sync's page budget of {self.bounds.max_pages} requests is spent "
                                 "(sync.max_pages)")

    def _read_by(self, stream, shown: str) -> _Deadline:
        """The body stream cut off at this answer's deadline, or the sync's if that comes first."""
        own = time.monotonic() + self.bounds.request_seconds
        if own <= self._deadline:
            return _Deadline(stream, own, f"{shown}: the answer took longer than its read deadline of "
                                          f"{self.bounds.request_seconds:g} s (sync.request_seconds)")
        return _Deadline(stream, self._deadline, f"{shown}: the sync's deadline of "
                                                 f"{self.bounds.deadline_seconds:g} s passed (sync.deadline_seconds)")

    def _check_status(self, response: httpx.Response, shown: str, needs: str | None = None) -> None:
        """Raise for an answer that is not data: a refused credential (a refused write: the
        permission it ``needs``), a redirect, an error."""
        status = response.status_code
        if status == 403 and needs:
            raise ConnectorError(f"{shown}: 403 - the tracker refused this write: the credential in {self.credential} "
                                 f"needs {needs} (docs/deployment.md, \"Publishing forecasts into the tracker\")")
        if status in (401, 403):
            raise ConnectorError(f"{shown}: {status} - the tracker refused the credential in {self.credential} "
                                 "(check it and its scopes: docs/architecture.md, \"Connectors\")")
        asked_304 = any(h in response.request.headers for h in CONDITIONAL)
        if 300 <= status < 400 and not (status == 304 and asked_304):
            try:
                host = httpx.URL(response.headers.get("Location", "")).host
            except httpx.InvalidURL:
                host = "an invalid URL"
            where = f" to {host[:100]}" if host else ""
            raise ConnectorError(f"{shown}: {status} {response.reason_phrase}{where} - a redirect is never followed "
                                 "nor read as data (a renamed repository or moved site: sync its new address)")
        if status >= 400:
            said = _message(response, self._secrets)
            raise ConnectorError(f"{shown}: {status} {response.reason_phrase}" + (f": {said}" if said else ""))
