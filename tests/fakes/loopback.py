"""What the fake trackers share: a real HTTP server on 127.0.0.1 in a thread, JSON answers, the
hostile answers (a trickle, an echo of the request's headers) and the environment of a
``slipcast`` child process."""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JsonHandler(BaseHTTPRequestHandler):
    """A request handler that answers JSON and keeps quiet in the test output."""

    def log_message(self, *args):
        pass

    def _answer(self, status: int, payload=None, headers: dict | None = None):
        body = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _trickle(self, payload, every: float):
        """A 200 whose body comes one byte every ``every`` seconds (never idle long enough for a
        read timeout); stops when the client goes away."""
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for i in range(len(body)):
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                time.sleep(every)
        except OSError:
            pass

    def _echo(self):
        """A 500 whose body repeats the request's headers, credential included, in every form a
        careless server might: a JSON message, and plain text after it."""
        ordered = sorted(self.headers.items(), key=lambda kv: kv[0].lower() != "authorization")  # the credential first
        headers = "; ".join(f"{k}: {v}" for k, v in ordered)
        body = json.dumps({"message": f"internal error handling {headers}",
                           "errorMessages": [f"request headers were {headers}"]}) + "\n" + headers
        data = body.encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class LoopbackSite:
    """A site served by ``handler`` on a free loopback port (``url``) while in a ``with`` block."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class Recorder(LoopbackSite):
    """Another origin that records the ``Authorization`` header of every request it gets (what a
    link to it would steal) and answers an empty JSON list."""

    def __init__(self):
        self.seen: list[str | None] = []
        recorder = self

        class Handler(JsonHandler):
            def do_GET(self):
                recorder.seen.append(self.headers.get("Authorization"))
                self._answer(200, [])

        super().__init__(Handler)


def cli_env(**variables: str) -> dict[str, str]:
    """The environment of a ``slipcast`` child process: PATH, the given variables (credentials),
    and this process's PYTHONPATH when it has one (a work tree runs its own source)."""
    env = {"PATH": "/usr/bin:/bin", **variables}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env
