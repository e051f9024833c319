"""One way to connect to Temporal, used by the worker, the gateway, the CLI and tests.

Every client carries the pydantic data converter, so run models cross the wire as
the same pydantic models on both ends, sealed by the encryption codec when keys are
set (duratask/codec.py), and the tracing interceptor when tracing is on.
"""

from __future__ import annotations

from typing import Any

from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType as Indexed
from temporalio.common import SearchAttributeKey
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from duratask.codec import data_converter
from duratask.settings import Settings
from duratask.telemetry import client_interceptors
from workflows.contracts import SEARCH_ATTRIBUTES


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """`runtime`: the worker passes its Prometheus runtime (duratask/telemetry.py)."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.namespace,
        data_converter=data_converter(settings),
        interceptors=client_interceptors(settings),
        runtime=runtime or Runtime.default(),
    )


def dev_server_flags(keys: list[SearchAttributeKey] | None = None) -> list[str]:
    """`--search-attribute` flags for `temporal server start-dev`."""
    names = {
        Indexed.KEYWORD: "Keyword",
        Indexed.KEYWORD_LIST: "KeywordList",
        Indexed.INT: "Int",
        Indexed.DOUBLE: "Double",
        Indexed.BOOL: "Bool",
        Indexed.DATETIME: "Datetime",
        Indexed.TEXT: "Text",
    }
    flags: list[str] = []
    for key in keys or SEARCH_ATTRIBUTES:
        flags += ["--search-attribute", f"{key.name}={names[key.indexed_value_type]}"]
    return flags


async def ensure_search_attributes(client: Client, namespace: str = "default") -> list[str]:
    """Register duratask's search attributes that the namespace lacks; returns the added.

    Servers without the list call (the time-skipping test server) get them all added.
    """
    have: set[str] = set()
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        have = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as e:
        if e.status != RPCStatusCode.UNIMPLEMENTED:
            raise
    missing: dict[str, Any] = {
        k.name: int(k.indexed_value_type) for k in SEARCH_ATTRIBUTES if k.name not in have
    }
    if missing:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
            )
        except RPCError as e:
            if e.status != RPCStatusCode.ALREADY_EXISTS:
                raise
    return sorted(missing)
