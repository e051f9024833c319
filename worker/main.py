"""Building and running the duratask worker.

`build_worker` wires the workflow and every activity onto one task queue; `run`
starts it and, on SIGINT/SIGTERM, stops polling and lets in-flight activities finish
within `shutdown_grace_s` before exiting (Temporal retries whatever did not).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from temporalio.client import Client
from temporalio.worker import Worker

from activities.bundles import StoreActivities
from activities.health import HealthActivities
from activities.llm.activity import LlmActivities
from activities.llm.streaming import delta_sink_factory
from activities.notify import NotifyActivities
from activities.tools.activity import ToolActivities
from activities.tools.mcp import McpActivities
from activities.tools.registry import ToolRegistry, build_registry
from activities.usage import UsageActivities
from duratask.access import SYSTEM
from duratask.health_schedule import ensure_health_schedule
from duratask.logging import configure_logging, get_logger
from duratask.peers import PeerMismatch, joined
from duratask.schedules.service import ScheduleService
from duratask.settings import Settings, get_settings
from duratask.store.db import migrate, private_sqlite
from duratask.store.definitions import DefinitionStore
from duratask.store.deltas import DeltaRelay
from duratask.store.rate_limits import RateLimiter
from duratask.telemetry import runtime_for, tracing_on
from worker.attempts import AttemptInterceptor
from worker.client import connect, ensure_search_attributes
from worker.run_metrics import RunMetricsInterceptor
from workflows import proofs
from workflows.health_check import HealthCheckWorkflow
from workflows.run_workflow import TaskRunWorkflow

# every workflow type a worker runs (tests/workflow/test_replay.py: each has a saved history)
WORKFLOWS = [TaskRunWorkflow, HealthCheckWorkflow]

log = get_logger(__name__)


def activities_for(
    settings: Settings,
    registry: ToolRegistry,
    services: dict[str, Any] | None = None,
    store: DefinitionStore | None = None,
) -> list[Any]:
    deltas = None
    if settings.stream_llm_deltas and store is not None:  # the relay lives in the store
        relay = DeltaRelay(store.engine, settings.stream_delta_ttl_s)
        deltas = delta_sink_factory(settings.llm_delta_interval_ms, relay)
    # endpoint rate limits are slots in the shared store (duratask/store/rate_limits.py)
    limiter = RateLimiter(store.engine) if store is not None else None
    llm = LlmActivities(settings, registry, delta_sink_factory=deltas, limiter=limiter)
    tools = ToolActivities(settings, registry, services)
    notify = NotifyActivities(settings)
    found = [llm.complete, tools.call, notify.notify]
    found.append(McpActivities(settings).list_tools)  # MCP tool sources (docs/mcp.md)
    if store is not None:
        found.append(StoreActivities(store).resolve_bundle)
        found.append(UsageActivities(store).record_usage)  # daily budgets
        found.append(HealthActivities(settings, store).check_all)
    return found


def worker_store(settings: Settings) -> DefinitionStore:
    """The store for the worker's store activities and schedule service (NullPool: no
    connection outlives its use, so a worker needs no store shutdown)."""
    private_sqlite(settings.database_url)
    return DefinitionStore(create_async_engine(settings.database_url, poolclass=NullPool))


def default_services(client: Client, store: DefinitionStore, settings: Settings) -> dict[str, Any]:
    # the scheduling tools act for the run's owner themselves (activities/tools/scheduling.py)
    return {"schedules": ScheduleService(client, store, settings, SYSTEM)}


def build_worker(
    client: Client,
    settings: Settings,
    task_queue: str | None = None,
    *,
    activities: Sequence[Any] | None = None,
    registry: ToolRegistry | None = None,
    services: dict[str, Any] | None = None,
    store: DefinitionStore | None = None,
) -> Worker:
    registry = registry or build_registry(settings)
    store = store or worker_store(settings)
    if settings.approval_key is not None:  # read by workflow code; never in history
        proofs.install_keys(settings.approval_keys())
    else:
        log.warning("no DURATASK_APPROVAL_KEY: approval decisions cannot be verified")
    if services is None:
        services = default_services(client, store, settings)
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=WORKFLOWS,
        activities=list(
            activities
            if activities is not None
            else activities_for(settings, registry, services, store)
        ),
        # runs, tokens, cost (docs/observability.md); attempt numbers on results, failures
        # and heartbeats (worker/attempts.py)
        interceptors=[RunMetricsInterceptor(), AttemptInterceptor()],
        max_concurrent_activities=settings.max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
        max_cached_workflows=settings.max_cached_workflows,  # worker memory (docs/deploy.md)
        graceful_shutdown_timeout=timedelta(seconds=settings.shutdown_grace_s),
        # heartbeats (and so cancellations: a steer, a cancelled run) reach activities
        # within about a second, not 80% of their heartbeat timeout
        max_heartbeat_throttle_interval=timedelta(seconds=settings.heartbeat_throttle_s),
        default_heartbeat_throttle_interval=timedelta(seconds=settings.heartbeat_throttle_s),
    )


async def run(settings: Settings | None = None, stop: asyncio.Event | None = None) -> None:
    settings = settings or get_settings()
    client = await connect(settings, runtime=runtime_for(settings))
    try:  # a fresh cluster (deploy/compose.yaml) has none of duratask's search attributes
        added = await ensure_search_attributes(client, settings.namespace)
        if added:
            log.info("search attributes registered", added=added)
    except Exception as e:  # e.g. no operator rights: an operator registers them instead
        log.warning("could not register search attributes", error=str(e))
    store = worker_store(settings)
    await migrate(store.engine)
    worker = build_worker(client, settings, store=store)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    async with joined(store.engine, settings, "worker"):
        await ensure_health_schedule(client, settings)
        log.info(
            "worker started",
            task_queue=settings.task_queue,
            address=settings.temporal_address,
            metrics=settings.worker_metrics_address
            and f"http://{settings.worker_metrics_address}/metrics",
            tracing=tracing_on(settings),
        )
        async with worker:
            await stop.wait()
            log.info("worker stopping", grace_s=settings.shutdown_grace_s)
    log.info("worker stopped")


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    try:
        asyncio.run(run(settings))
    except PeerMismatch as e:
        log.error("worker refuses to start", reason=str(e))
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
