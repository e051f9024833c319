"""`duratask temporal-setup` prepares a namespace on a real server, as the deploy
files' init step runs it: creates it, sets retention, registers the search attributes;
a second run changes nothing."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import uuid
from pathlib import Path

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from workflows.contracts import SEARCH_ATTRIBUTES


async def _setup(env: WorkflowEnvironment, namespace: str, tmp_path: Path) -> tuple[int, str]:
    exe = shutil.which("duratask", path=str(Path(sys.executable).parent))
    argv = [exe] if exe else [sys.executable, "-m", "cli.main"]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DURATASK_")} | {
        "DURATASK_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "DURATASK_NAMESPACE": namespace,
    }
    proc = await asyncio.create_subprocess_exec(
        *argv, "temporal-setup", "--retention-hours", "48", cwd=tmp_path, env=environ,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode()


async def test_temporal_setup_creates_and_prepares_a_namespace(
    dev_env: WorkflowEnvironment, dev_client: Client, tmp_path: Path
) -> None:
    namespace = f"dt-setup-{uuid.uuid4().hex[:8]}"
    code, out = await _setup(dev_env, namespace, tmp_path)
    assert code == 0, out
    desc = await dev_client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace)
    )
    assert desc.config.workflow_execution_retention_ttl.seconds == 48 * 3600
    attrs = await dev_client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    assert {k.name for k in SEARCH_ATTRIBUTES} <= set(attrs.custom_attributes)
    code, out = await _setup(dev_env, namespace, tmp_path)
    assert code == 0 and "none (all present)" in out, out
