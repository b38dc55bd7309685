"""Run an ASGI app (a Starlette simulator) with uvicorn on 127.0.0.1, in a thread, for a test.

`serve(app)` yields the base URL (`http://127.0.0.1:PORT`) once the server accepts connections
and stops it afterwards. A port of 0 lets the OS choose, so tests run in parallel safely.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp

__all__ = ["serve"]


_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


@contextmanager
def _logging_left_as_it_was() -> Iterator[None]:
    """uvicorn reconfigures its loggers process-wide (levels, handlers, no propagation); a test
    process must get them back as they were, or later tests of log redaction see nothing."""
    saved = []
    for name in _UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, list(logger.handlers), logger.propagate))
    try:
        yield
    finally:
        for logger, level, handlers, propagate in saved:
            logger.setLevel(level)
            logger.handlers[:] = handlers
            logger.propagate = propagate


@contextmanager
def serve(app: ASGIApp, *, timeout: float = 10.0, **options: Any) -> Iterator[str]:
    """`options` go to `uvicorn.Config` (the API's tests pass the server's own)."""
    with _logging_left_as_it_was():
        yield from _serve(app, timeout, options)


def _serve(app: ASGIApp, timeout: float, options: dict[str, Any]) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        **{"log_config": None, "log_level": "warning", "access_log": False, "lifespan": "off"}
        | options,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the simulator did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
