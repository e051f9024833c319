"""`duratask dev`'s state under `.duratask/` is private even with a permissive umask:
the directory 0700, the dev token, the Temporal dev server's database and log 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cli.devstack import dev_token, temporal_server
from tests.stack import free_port


async def test_the_dev_servers_files_are_created_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # `.duratask/` is relative to where `duratask dev` runs
    old = os.umask(0o022)
    try:
        dev_token()
        async with temporal_server(free_port(), free_port(), ui=False):
            pass
    finally:
        os.umask(old)
    state = tmp_path / ".duratask"
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in state.iterdir()}
    assert {"dev-token", "temporal.db", "temporal.log"} <= set(modes), modes
    assert set(modes.values()) == {0o600}, modes
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
