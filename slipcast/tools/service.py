"""The service as a child process on loopback: started, awaited until ready, stopped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx


def free_port() -> int:
    """A port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_service(port: int, env: dict[str, str] | None = None, timeout: float = 120.0,
                    workers: int = 1) -> Iterator[str]:
    """Run ``slipcast serve`` (with ``workers`` processes) on 127.0.0.1:``port`` until the
    block ends; yields its base URL once /readyz answers 200. ``env`` adds to (or, with None
    values, removes from) the environment."""
    environ = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    proc = subprocess.Popen([sys.executable, "-m", "slipcast.cli", "serve", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", str(workers)],
                            env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"service exited: {err[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"service on {base} not ready after {timeout} s")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
