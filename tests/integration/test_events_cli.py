"""`duratask run watch` and `run start --follow` against a live run (plain-text mode).

The CLI runs as a real subprocess against the real gateway, as a user's shell would
run it; stdout is a pipe, so it picks the non-interactive one-line-per-event output.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

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
