from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from tests.stack import Stack, run_stack


@pytest.fixture
async def stack(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> AsyncIterator[Stack]:
    # with a link key, so fuzzed tokens reach the link checks of /v1/links/{token}
    async with run_stack(
        dev_env, task_queue, tmp_path, delivery_link_key=SecretStr("contract-link-key")
    ) as s:
        yield s
