"""The dev server every benchmark measures on: the same one the tests use (priority and
fairness on, duratask's search attributes), from the pinned `temporal` on PATH.

Each benchmark starts its own, so its raw baseline and duratask share one server and
one process. Without `temporal` on PATH the SDK would try to download a server: refuse.
"""

from __future__ import annotations

import shutil

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tests.conftest import DEV_SERVER_ARGS
from workflows.contracts import SEARCH_ATTRIBUTES


async def start_dev_server() -> WorkflowEnvironment:
    binary = shutil.which("temporal")
    if binary is None:
        raise SystemExit("temporal not on PATH: run `make bench` (it installs and finds it)")
    return await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=binary,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=DEV_SERVER_ARGS,
    )
