"""Per-request costs kept down (bench/__main__.py measures the gateway against raw Temporal)."""

from __future__ import annotations

import inspect

from api import deps


def test_request_dependencies_do_not_go_through_the_thread_pool() -> None:
    # FastAPI runs a plain `def` dependency in its thread pool: a round trip each
    for dep in (deps.get_settings, deps.get_store, deps.get_principal, deps.get_runs,
                deps.get_definitions, deps._scoped("tasks:read")):  # fmt: skip
        assert inspect.iscoroutinefunction(dep), dep
