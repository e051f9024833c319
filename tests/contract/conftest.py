from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.stack import Stack, run_stack


@pytest.fixture
async def stack(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> AsyncIterator[Stack]:
    async with run_stack(dev_env, task_queue, tmp_path) as s:
        yield s
