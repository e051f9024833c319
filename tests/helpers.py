"""Test helpers: building run inputs and workers without the gateway."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import SecretStr
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from duratask.settings import Settings
from worker.main import build_worker
from workflows.definition import TaskDefinition
from workflows.models import (
    BundledDefinition,
    DefinitionBundle,
    RunInput,
    RunMeta,
)
from workflows.run_workflow import TaskRunWorkflow

# The approval key test workers verify with (and tests sign with, as the gateway does)
APPROVAL_KEY = "test-approval-key"


def definition(steps: list[dict[str, Any]], **extra: Any) -> TaskDefinition:
    return TaskDefinition.model_validate({"id": extra.pop("id", "t"), "steps": steps, **extra})


def run_input(
    defn: TaskDefinition,
    input: dict[str, Any] | None = None,
    others: list[TaskDefinition] | None = None,
    **meta: Any,
) -> RunInput:
    return RunInput(
        bundle=DefinitionBundle(
            root=BundledDefinition(definition=defn, version=1),
            others={o.id: BundledDefinition(definition=o, version=1) for o in others or []},
        ),
        input=input or {},
        meta=RunMeta(**meta),
    )


def make_worker(client: Client, task_queue: str, **kwargs: Any) -> Worker:
    settings = kwargs.pop("settings", None) or Settings(
        http_allow_private=True, approval_key=SecretStr(APPROVAL_KEY)
    )
    return build_worker(client, settings, task_queue, **kwargs)


async def start(client: Client, task_queue: str, inp: RunInput, **kwargs: Any) -> WorkflowHandle:
    return await client.start_workflow(
        TaskRunWorkflow.run,
        inp,
        id=kwargs.pop("id", f"run-test-{uuid.uuid4().hex[:10]}"),
        task_queue=task_queue,
        **kwargs,
    )


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 60) -> Any:
    """Poll `check` until it returns something truthy (visibility is eventually consistent)."""

    async def loop() -> Any:
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(0.3)

    return await asyncio.wait_for(loop(), timeout)
