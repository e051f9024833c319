"""The realmodel tier: a real llama.cpp server (SmolLM2-135M) behind the real gateway.

Every test here is marked `realmodel`: `make test` deselects them, `make test-model`
installs the server (tests/realmodel/setup.sh) and runs only them. Nothing here skips:
a server that cannot start fails the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.realmodel.server import ClosingProxy, LlamaServer, llama_server

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.realmodel)


@pytest.fixture(scope="session")
async def plain_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LlamaServer]:
    async with llama_server(tmp_path_factory.mktemp("llama-plain")) as server:
        yield server


@pytest.fixture(scope="session")
async def fc_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LlamaServer]:
    async with llama_server(tmp_path_factory.mktemp("llama-fc"), function_calling=True) as server:
        yield server


@pytest.fixture
async def proxy(plain_server: LlamaServer) -> AsyncIterator[ClosingProxy]:
    p = ClosingProxy(plain_server.port)
    await p.start()
    yield p
    await p.close()
