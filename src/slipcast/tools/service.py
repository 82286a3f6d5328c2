"""The service as a child process on loopback: started, awaited until ready, stopped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx


def free_port() -> int:
    """A port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float, log: Callable[[], str]) -> None:
    """Wait until ``url`` answers 200; raise with the process's ``log()`` if it exits first,
    TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"the process behind {url} exited: {log()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not answering after {timeout} s")
        time.sleep(0.1)


@contextmanager
def running_service(port: int, env: dict[str, str] | None = None, timeout: float = 120.0,
                    workers: int = 1, args: tuple[str, ...] = ()) -> Iterator[str]:
    """Run ``slipcast serve`` (with ``workers`` processes, and ``args``: ``--sync jira`` ...) on
    127.0.0.1:``port`` until the block ends; yields its base URL once /readyz answers 200. ``env``
    adds to (or, with None values, removes from) the environment."""
    environ = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    proc = subprocess.Popen([sys.executable, "-m", "slipcast.cli", "serve", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", str(workers), *args],
                            env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/readyz", proc, timeout,
                      lambda: proc.stderr.read().decode()[-2000:] if proc.stderr else "")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
