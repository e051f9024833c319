"""Secure defaults: state files are private from their first byte, and the gateway
refuses to serve open auth beyond loopback unless told `--insecure`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from api.auth import is_loopback, open_auth_warning, open_bind_refusal
from cli.devstack import dev_token
from duratask.files import create_private, open_private_append
from duratask.settings import ApiKey, Settings
from duratask.store.db import create_engine, migrate

ROOT = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The usual 022: a plain open() would make world-readable files."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_dev_token_is_created_0600_and_kept(tmp_path: Path, permissive_umask: None) -> None:
    state = tmp_path / ".duratask"
    token = dev_token(state)
    path = state / "dev-token"
    assert mode(path) == 0o600 and mode(state) == 0o700
    assert len(token) >= 32 and dev_token(state) == token  # the second call reads it


def test_a_file_is_never_readable_by_others_not_even_briefly(
    tmp_path: Path, permissive_umask: None
) -> None:
    """Created with its mode by os.open: no chmod after the fact (chmod is refused here)."""
    real_chmod = os.chmod

    def no_chmod(*a: object, **k: object) -> None:
        raise AssertionError("chmod after creation leaves a window")

    os.chmod = no_chmod  # type: ignore[assignment]
    try:
        assert create_private(tmp_path / "a" / "secret", b"x")
        os.close(open_private_append(tmp_path / "a" / "log"))
    finally:
        os.chmod = real_chmod
    assert mode(tmp_path / "a" / "secret") == 0o600
    assert mode(tmp_path / "a" / "log") == 0o600
    assert not create_private(tmp_path / "a" / "secret", b"y")  # existing: untouched
    assert (tmp_path / "a" / "secret").read_bytes() == b"x"


async def test_the_sqlite_store_and_its_journal_are_0600(
    tmp_path: Path, permissive_umask: None
) -> None:
    db = tmp_path / "state" / "duratask.db"
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    files = [p for p in db.parent.iterdir() if p.name.startswith("duratask.db")]
    assert db in files
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}


def open_settings(**kw: Any) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg]


def test_open_auth_beyond_loopback_is_refused_unless_insecure() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    assert not is_loopback("gateway.example.com")
    s = open_settings()
    assert open_bind_refusal(s, "127.0.0.1") is None
    refusal = open_bind_refusal(s, "0.0.0.0")
    assert refusal and "--insecure" in refusal and "DURATASK_API_KEYS" in refusal
    assert open_bind_refusal(open_settings(insecure=True), "0.0.0.0") is None
    keyed = open_settings(api_keys=[ApiKey(key=SecretStr("k"), identity="ann")])
    assert open_bind_refusal(keyed, "0.0.0.0") is None
    assert open_bind_refusal(open_settings(auth_required=True), "0.0.0.0") is None
    assert open_auth_warning(s) and open_auth_warning(keyed) is None


def test_duratask_gateway_refuses_to_start_on_0_0_0_0_with_open_auth(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURATASK_")}
    env["DURATASK_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/d.db"
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "gateway", "--host", "0.0.0.0", "--port", "18190"],
        cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT), "COLUMNS": "400"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0
    said = " ".join((proc.stdout + proc.stderr).split())
    assert "refusing to serve on 0.0.0.0 with authentication open" in said, said
    assert "--insecure" in said
