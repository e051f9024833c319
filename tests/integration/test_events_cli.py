"""`duratask run watch` and `run start --follow` against a live run (plain-text mode).

The CLI runs as a real subprocess against the real gateway, as a user's shell would
run it; stdout is a pipe, so it picks the non-interactive one-line-per-event output.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from tests.integration.test_events import SLOW
from tests.stack import Stack


async def duratask(stack: Stack, cwd: Path, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "DURATASK_PUBLIC_URL": stack.url}
    env.pop("DURATASK_TOKEN", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", *args,
        cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_watch_follows_a_live_run_to_completion(stack: Stack, tmp_path: Path) -> None:
    await stack.put_definition(SLOW)
    run = await stack.start("slow")
    code, out, err = await duratask(stack, tmp_path, "run", "watch", run["run_id"])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"watching {run['run_id']}"
    assert any(line.endswith("run.started") for line in lines)
    for i in range(4):
        assert any(f"step.started s{i}" in line for line in lines), out
        assert f"  s{i}> one two three four five" in out  # the streamed model text
        assert any(f"step.completed s{i}" in line for line in lines), out
    assert any(line.endswith("progress 100%") or "progress" in line for line in lines)
    assert any(line.endswith("run.completed") for line in lines)
    assert lines[-1] == f"run {run['run_id']} completed"


async def test_start_follow_exits_non_zero_when_the_run_fails(stack: Stack, tmp_path: Path) -> None:
    await stack.put_definition(
        {"id": "broken", "steps": [{"id": "bad", "action": "llm_call", "prompt": "{{ nope.x }}"}]}
    )
    code, out, _ = await duratask(stack, tmp_path, "run", "start", "broken", "--follow", "--plain")
    assert code == 1, out
    assert "step.failed bad" in out and "run.failed" in out
    assert out.strip().endswith("failed")


async def test_watch_unknown_run(stack: Stack, tmp_path: Path) -> None:
    code, _, err = await duratask(stack, tmp_path, "run", "watch", "run-nope", "--plain")
    assert code == 2 and "not found" in err


class DroppingProxy:
    """A TCP proxy in front of the gateway that can cut every open connection at once."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.writers: list[asyncio.StreamWriter] = []
        self.bytes_down = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, down: bool) -> None:
            try:
                while data := await src.read(65536):
                    if down:
                        self.bytes_down += len(data)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))

    def drop_all(self) -> None:
        for w in self.writers:
            w.transport.abort()
        self.writers.clear()

    async def close(self) -> None:
        self.drop_all()
        if self.server is not None:
            self.server.close()


async def test_watch_reconnects_after_a_dropped_connection(stack: Stack, tmp_path: Path) -> None:
    slow: dict[str, Any] = json.loads(json.dumps(SLOW))
    slow["id"] = "slower"
    slow["model"]["script"] = [{"delay": 0.8, "text": "one two three"}]
    await stack.put_definition(slow)
    run = await stack.start("slower")
    run_id = run["run_id"]
    proxy = DroppingProxy(int(stack.url.rsplit(":", 1)[1]))
    port = await proxy.start()
    via_proxy = Stack(f"http://127.0.0.1:{port}", stack.http, stack.client, stack.settings, "")
    watcher = asyncio.create_task(duratask(via_proxy, tmp_path, "run", "watch", run_id))
    for _ in range(3000):  # wait until events are flowing through the proxy, then cut it
        if proxy.bytes_down > 1500:
            break
        await asyncio.sleep(0.02)
    proxy.drop_all()
    code, out, err = await watcher
    await proxy.close()
    assert code == 0, err
    assert "reconnecting" in err
    printed = [" ".join(line.split()[1:3]) for line in out.splitlines() if line[:2].isdigit()]
    r = await stack.http.get(
        f"/v1/runs/{run_id}/events", headers={"Accept": "application/json"}, params={"limit": 5000}
    )
    expected = [
        " ".join(filter(None, [e["type"], e["step_id"]]))
        for e in r.json()["events"]
        if e["type"] != "llm.delta"
    ]
    assert printed == expected  # every event once, in order: no gap, no duplicate
