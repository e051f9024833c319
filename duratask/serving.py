"""Serving the gateway inside a process that owns its own signals.

`duratask dev` and the tests run uvicorn next to the worker in one event loop;
uvicorn must then leave SIGINT/SIGTERM to its host instead of capturing and
re-raising them after shutdown.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator

import uvicorn


class EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield
