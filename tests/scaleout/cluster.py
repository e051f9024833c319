"""A small cluster of real processes on one dev server: N gateways, M workers.

Each gateway and worker is its own `duratask gateway` / `duratask worker` process, as
in a deployment, sharing one Temporal namespace, task queue and PostgreSQL store.
A worker is found by the identity Temporal reports (`<pid>@<host>`) and can be
killed with SIGKILL mid-step.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from tests.helpers import APPROVAL_KEY
from tests.stack import free_port

KEYS = {
    "alice": "key-alice",
    "bob": "key-bob",
    "approver": "key-approver",
}
ALL_SCOPES = ["tasks:read", "tasks:write", "tasks:approve"]


def _argv() -> list[str]:
    exe = shutil.which("duratask", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "cli.main"]


@dataclass
class Proc:
    role: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.kill9()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Cluster:
    client: Client
    task_queue: str
    env: dict[str, str]
    tmp: Path
    gateways: list[Proc] = field(default_factory=list)
    workers: list[Proc] = field(default_factory=list)

    def http(self, gateway: int, who: str = "alice") -> httpx.AsyncClient:
        gw = self.gateways[gateway]
        assert gw.url
        return httpx.AsyncClient(
            base_url=gw.url, timeout=60, headers={"Authorization": f"Bearer {KEYS[who]}"}
        )

    def spawn(self, role: str, extra_env: dict[str, str] | None = None) -> Proc:
        n = len(self.gateways if role == "gateway" else self.workers)
        log = self.tmp / f"{role}-{n}.log"
        env = self.env | (extra_env or {})
        args = [role]
        url = None
        if role == "gateway":
            port = free_port()
            args += ["--host", "127.0.0.1", "--port", str(port)]
            url = f"http://127.0.0.1:{port}"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                [*_argv(), *args], cwd=self.tmp, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        proc = Proc(role, popen, log, url)
        (self.gateways if role == "gateway" else self.workers).append(proc)
        return proc

    async def wait_gateway(self, proc: Proc, timeout: float = 60) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        async with httpx.AsyncClient(base_url=proc.url or "", timeout=5) as http:
            while True:
                if not proc.alive():
                    raise RuntimeError(f"gateway exited:\n{proc.output()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/readyz")).status_code == 200:
                        return
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(f"gateway not ready:\n{proc.output()[-3000:]}")
                await asyncio.sleep(0.2)

    async def pollers(self, kind: TaskQueueType.ValueType) -> set[str]:
        resp = await self.client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self.client.namespace,
                task_queue=TaskQueue(name=self.task_queue),
                task_queue_type=kind,
            )
        )
        return {p.identity for p in resp.pollers}

    async def wait_workers(self, procs: list[Proc], timeout: float = 60) -> None:
        want = {str(p.pid) for p in procs}
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for p in procs:
                if not p.alive():
                    raise RuntimeError(f"worker exited:\n{p.output()[-3000:]}")
            seen = {
                i.split("@")[0] for i in await self.pollers(TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
            }
            if want <= seen:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"workers {want} not polling (seen {seen})")
            await asyncio.sleep(0.2)

    def worker_by_identity(self, identity: str) -> Proc:
        pid = identity.split("@")[0]
        return next(w for w in self.workers if str(w.pid) == pid)

    def stop(self) -> None:
        for p in self.gateways + self.workers:
            p.stop()


def cluster_env(address: str, task_queue: str, database_url: str, **extra: str) -> dict[str, str]:
    keys = [
        {"key": KEYS["alice"], "identity": "alice", "scopes": ALL_SCOPES, "groups": ["crew"]},
        {"key": KEYS["bob"], "identity": "bob", "scopes": ALL_SCOPES, "groups": ["crew"]},
        {
            "key": KEYS["approver"],
            "identity": "approver@example.com",
            "scopes": ALL_SCOPES,
            "groups": ["crew"],
        },
    ]
    base = {k: v for k, v in os.environ.items() if not k.startswith("DURATASK_")}
    return (
        base
        | {
            "DURATASK_TEMPORAL_ADDRESS": address,
            "DURATASK_TASK_QUEUE": task_queue,
            "DURATASK_DATABASE_URL": database_url,
            "DURATASK_API_KEYS": json.dumps(keys),
            "DURATASK_AUTH_REQUIRED": "true",
            "DURATASK_APPROVAL_KEY": APPROVAL_KEY,  # every gateway and worker shares it
            "DURATASK_HTTP_ALLOW_PRIVATE": "true",
            "DURATASK_LOG_LEVEL": "INFO",
            "DURATASK_SHUTDOWN_GRACE_S": "2",
            "NO_COLOR": "1",
        }
        | extra
    )


@contextlib.asynccontextmanager
async def run_cluster(
    client: Client,
    task_queue: str,
    database_url: str,
    tmp: Path,
    gateways: int = 2,
    workers: int = 2,
    **extra: str,
) -> AsyncIterator[Cluster]:
    address = client.service_client.config.target_host
    cluster = Cluster(
        client, task_queue, cluster_env(address, task_queue, database_url, **extra), tmp
    )
    try:
        # the first gateway migrates the store; the others start beside it
        first = cluster.spawn("gateway")
        await cluster.wait_gateway(first)
        for _ in range(gateways - 1):
            cluster.spawn("gateway")
        for _ in range(workers):
            cluster.spawn("worker")
        await asyncio.gather(*(cluster.wait_gateway(g) for g in cluster.gateways[1:]))
        await cluster.wait_workers(cluster.workers)
        yield cluster
    finally:
        cluster.stop()


async def sse_events(
    http: httpx.AsyncClient, run_id: str, timeout: float = 90
) -> list[dict[str, Any]]:
    """Every event of the run's SSE stream until it ends, with their SSE ids."""
    from httpx_sse import aconnect_sse

    events: list[dict[str, Any]] = []
    async with aconnect_sse(http, "GET", f"/v1/runs/{run_id}/events", timeout=timeout) as source:
        async for sse in source.aiter_sse():
            if not sse.data:
                continue
            data = json.loads(sse.data)
            data["_sse_id"] = sse.id
            events.append(data)
    return events
