"""The `duratask` CLI as a user runs it: a subprocess talking to a live test stack."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.stack import Stack


@dataclass
class Result:
    code: int
    out: str
    err: str


class Cli:
    def __init__(self, stack: Stack, cwd: Path) -> None:
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DURATASK_")} | {
            "DURATASK_URL": stack.url,
            "COLUMNS": "200",
            "NO_COLOR": "1",
        }
        exe = shutil.which("duratask", path=str(Path(sys.executable).parent))
        self.argv = [exe] if exe else [sys.executable, "-m", "cli.main"]

    async def __call__(self, *args: str) -> Result:
        proc = await asyncio.create_subprocess_exec(
            *self.argv, *args, cwd=self.cwd, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode is not None
        return Result(proc.returncode, out.decode(), err.decode())


@pytest.fixture
def cli(stack: Stack, tmp_path: Path) -> Cli:
    return Cli(stack, tmp_path)


GREET = {
    "id": "greet",
    "name": "Greeter",
    "inputs": {"name": {"type": "string", "required": True}, "n": {"type": "integer"}},
    "steps": [
        {"id": "say", "action": "llm_call", "prompt": "Hello {{ input.name }} x{{ input.n }}"}
    ],
}
FAILS = {
    "id": "fails",
    "steps": [{"id": "boom", "action": "llm_call", "prompt": "{{ input.ticket.title }}"}],
}


async def test_definition_commands(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "greet.yaml"
    path.write_text(yaml.safe_dump(GREET))
    r = await cli("def", "apply", "-f", str(path))
    assert r.code == 0, r.err
    assert "applied greet version 1" in r.out
    r = await cli("def", "list")
    assert r.code == 0 and "greet" in r.out and "Greeter" in r.out
    r = await cli("def", "show", "greet")
    assert r.code == 0 and "version 1" in r.out and "Hello {{ input.name }}" in r.out

    bad = tmp_path / "bad.json"
    bad.write_text('{"id": "bad", "steps": [{"id": "a", "action": "tool_call", "tool": "shell"}]}')
    r = await cli("def", "apply", "-f", str(bad))
    assert r.code != 0 and "step 'a'" in r.err and "shell" in r.err
    r = await cli("def", "show", "ghost")
    assert r.code != 0 and "404" in r.err and "ghost" in r.err


async def test_run_commands(cli: Cli, stack: Stack) -> None:
    await stack.put_definition(GREET)
    await stack.put_definition(FAILS)
    await stack.put_definition(
        {"id": "slow", "steps": [{"id": "nap", "action": "wait", "duration": "1h"}]}
    )

    r = await cli("run", "start", "greet", "--input", "name=Ada", "--input", "n=3", "--wait")
    assert r.code == 0, r.err
    assert "Hello Ada x3" in r.out
    run_id = r.out.split("started ")[1].split()[0]
    assert run_id.startswith("run-")

    r = await cli("run", "show", run_id)
    assert r.code == 0 and "completed" in r.out and "say" in r.out
    r = await cli("run", "list", "--definition", "greet")
    assert r.code == 0 and run_id in r.out

    r = await cli("run", "retry", run_id)
    assert r.code == 0 and "retry 1" in r.out

    r = await cli("run", "start", "fails", "--input-json", '{"ticket": {}}', "--wait")
    assert r.code == 1
    assert "failed" in r.out and "TEMPLATE_ERROR" in r.out and "input.ticket.title" in r.out

    r = await cli("run", "start", "greet", "--wait")  # required input missing
    assert r.code != 0 and "name" in r.err

    r = await cli("run", "start", "slow")
    assert r.code == 0
    slow = r.out.split("started ")[1].split()[0]
    r = await cli("run", "cancel", slow, "--reason", "from the cli")
    assert r.code == 0
    result = await stack.wait_result(slow)
    assert result["status"] == "cancelled"
    assert result["state"]["cancel_reason"] == "from the cli"
    r = await cli("run", "cancel", slow, "--reason", "again")
    assert r.code != 0 and "409" in r.err and "cancelled" in r.err

    r = await cli("run", "show", "run-does-not-exist")
    assert r.code != 0 and "404" in r.err and "run-does-not-exist" in r.err
    r = await cli("run", "start", "nope")
    assert r.code != 0 and "nope" in r.err
