"""The dev server every benchmark measures on: the same one the tests use (priority and
fairness on, duratask's search attributes), from the pinned `temporal` on PATH.

Each benchmark starts its own, so its raw baseline and duratask share one server and
one process. Without `temporal` on PATH the SDK would try to download a server: refuse.

A benchmark prints its figures and nothing else: the server's banner and logs go to
/dev/null, and the SDK's expected complaints (a cancelled activity "completing as
failed", with its traceback) are below the level logged (`figures_only()`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
from collections.abc import Iterator

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from duratask.logging import configure_logging
from tests.conftest import DEV_SERVER_ARGS
from workflows.contracts import SEARCH_ATTRIBUTES


async def start_dev_server() -> WorkflowEnvironment:
    binary = shutil.which("temporal")
    if binary is None:
        raise SystemExit("temporal not on PATH: run `make bench` (it installs and finds it)")
    with _silenced_children():
        return await WorkflowEnvironment.start_local(
            data_converter=pydantic_data_converter,
            dev_server_existing_path=binary,
            search_attributes=SEARCH_ATTRIBUTES,
            dev_server_extra_args=DEV_SERVER_ARGS,
            dev_server_log_level="error",
        )


@contextlib.contextmanager
def _silenced_children() -> Iterator[None]:
    """Processes started inside inherit /dev/null as stdout and stderr (the server's
    banner and logs); this process's own output is back afterwards."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (null, *saved):
            os.close(fd)


def figures_only() -> None:
    """Logging for a benchmark run: warnings of duratask, errors of the SDK."""
    configure_logging("WARNING")
    logging.getLogger("temporalio").setLevel(logging.ERROR)
