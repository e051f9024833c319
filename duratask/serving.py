"""Serving the gateway: live event streams end on shutdown; embedded servers leave signals.

An SSE response never ends by itself, and uvicorn waits for open responses before it
shuts the app down, so `GatewayServer` closes the app's run-event streams first (their
clients reconnect with `Last-Event-ID` to the next gateway). `duratask dev` and the
tests run uvicorn next to the worker in one event loop; `EmbeddedServer` then leaves
SIGINT/SIGTERM to its host instead of capturing and re-raising them after shutdown.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Generator

import uvicorn


class GatewayServer(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        hub = getattr(getattr(self.config.app, "state", None), "stream_hub", None)
        if hub is not None:
            await hub.close()
        await super().shutdown(sockets)


class EmbeddedServer(GatewayServer):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield
