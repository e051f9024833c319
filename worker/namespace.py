"""Preparing a Temporal namespace for duratask: the namespace itself, its retention,
and the `Duratask*` search attributes that run listing and the Web UI filters need.

`duratask dev` does it on the embedded server; on a real cluster the deploy files run
`duratask temporal-setup` once (compose's init service, a Kubernetes Job). Idempotent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf.duration_pb2 import Duration
from temporalio.api.namespace.v1 import NamespaceConfig
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    RegisterNamespaceRequest,
    UpdateNamespaceRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from worker.client import ensure_search_attributes

DEFAULT_RETENTION_HOURS = 720
T = TypeVar("T")


async def ensure_namespace(client: Client, namespace: str, retention_hours: int) -> bool:
    """Register `namespace` when it is missing; returns whether it was created."""
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
        return False
    except RPCError as e:
        if e.status != RPCStatusCode.NOT_FOUND:
            raise
    try:
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=namespace,
                workflow_execution_retention_period=Duration(seconds=retention_hours * 3600),
            )
        )
    except RPCError as e:
        if e.status != RPCStatusCode.ALREADY_EXISTS:
            raise
        return False
    return True


async def set_retention(client: Client, namespace: str, retention_hours: int) -> None:
    await client.workflow_service.update_namespace(
        UpdateNamespaceRequest(
            namespace=namespace,
            config=NamespaceConfig(
                workflow_execution_retention_ttl=Duration(seconds=retention_hours * 3600)
            ),
        )
    )


async def _when_known(call: Callable[[], Awaitable[T]], timeout_s: float) -> T:
    """A namespace just registered is unknown to parts of the server until their
    namespace caches refresh (seconds): retry NOT_FOUND until it is known."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            return await call()
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND or asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.5)


async def prepare_namespace(
    client: Client,
    namespace: str,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
    timeout_s: float = 60.0,
) -> list[str]:
    """Namespace, retention and search attributes; returns the attributes added."""
    await ensure_namespace(client, namespace, retention_hours)
    await _when_known(lambda: set_retention(client, namespace, retention_hours), timeout_s)
    return await _when_known(lambda: ensure_search_attributes(client, namespace), timeout_s)
