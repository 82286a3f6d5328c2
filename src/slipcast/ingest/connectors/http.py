"""An HTTP client for tracker APIs: credentials from the environment, retries that honour the
server's rate limits, and counts of what was moved.

Retries (tenacity) cover 429 and 503 (waiting what ``Retry-After`` or ``X-RateLimit-Reset``
says, else exponential backoff with jitter) and dropped connections; 401 and 403 stop at once
with an error naming the credential, never its value (docs/architecture.md, "Connectors").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime

import httpx
from tenacity import RetryCallState, retry, retry_if_exception, stop_after_attempt, wait_exponential_jitter

RETRIED_STATUS = (429, 502, 503, 504)
MAX_WAIT_SECONDS = 60.0


class ConnectorError(RuntimeError):
    """A tracker refused or failed a request in a way a retry cannot mend; the message says why."""


class _Retry(Exception):
    def __init__(self, response: httpx.Response):
        super().__init__(f"{response.status_code} from {response.request.url}")
        self.response = response


def _rate_limited(response: httpx.Response) -> bool:
    """GitHub answers a spent rate limit (primary or secondary) with 403 and says so in headers."""
    return response.status_code == 403 and (response.headers.get("x-ratelimit-remaining") == "0"
                                             or "retry-after" in response.headers)


def _server_wait(state: RetryCallState) -> float:
    """What the server asked for (Retry-After seconds or date, X-RateLimit-Reset), else backoff."""
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, _Retry):
        headers = exc.response.headers
        after = headers.get("Retry-After")
        if after:
            try:
                return min(float(after), MAX_WAIT_SECONDS)
            except ValueError:
                return min(max(parsedate_to_datetime(after).timestamp() - time.time(), 0.0), MAX_WAIT_SECONDS)
        reset = _reset_at(headers.get("X-RateLimit-Reset", ""))
        if reset is not None:
            return min(max(reset - time.time(), 0.0), MAX_WAIT_SECONDS)
    return wait_exponential_jitter(initial=0.5, max=MAX_WAIT_SECONDS)(state)


def _reset_at(value: str) -> float | None:
    """When a rate limit resets, as epoch seconds: GitHub sends epoch seconds, Jira Cloud an ISO
    8601 time to the minute (``2026-12-01T10:45Z``); anything else is ignored."""
    if value.isdigit():
        return float(value)
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


@dataclass
class Client:
    """One tracker's API at ``base_url`` with ``headers`` carrying the credential."""

    base_url: str
    headers: dict[str, str]
    credential: str  # the environment variable(s) the credential came from, for errors
    timeout: float = 30.0
    attempts: int = 6
    requests: int = 0
    bytes: int = 0
    _http: httpx.Client = field(init=False, repr=False)

    def __post_init__(self):
        self._http = httpx.Client(base_url=self.base_url.rstrip("/"), headers=self.headers, timeout=self.timeout)

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, params: dict | None = None, headers: dict | None = None) -> httpx.Response:
        return self._send("GET", path, params=params, headers=headers)

    def post(self, path: str, body: dict) -> httpx.Response:
        return self._send("POST", path, json=body)

    def _send(self, method: str, path: str, **kwargs) -> httpx.Response:
        @retry(retry=retry_if_exception(lambda e: isinstance(e, (_Retry, httpx.TransportError))),
               wait=_server_wait, stop=stop_after_attempt(self.attempts), reraise=True)
        def once() -> httpx.Response:
            self.requests += 1
            response = self._http.request(method, path, **kwargs)
            self.bytes += len(response.content)
            if response.status_code in RETRIED_STATUS or _rate_limited(response):
                raise _Retry(response)
            return response

        try:
            response = once()
        except _Retry as exc:
            raise ConnectorError(f"{method} {path}: still {exc.response.status_code} after {self.attempts} tries") from None
        except httpx.TransportError as exc:
            raise ConnectorError(f"{method} {path}: {type(exc).__name__} after {self.attempts} tries") from None
        if response.status_code in (401, 403):
            raise ConnectorError(f"{method} {path}: {response.status_code} - the tracker refused the credential in "
                                 f"{self.credential} (check it and its scopes: docs/architecture.md, \"Connectors\")")
        if response.status_code >= 400:
            raise ConnectorError(f"{method} {path}: {response.status_code} {response.text[:200]}")
        return response
