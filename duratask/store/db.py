"""Engine creation and migrations.

Migrations run at start-up of the gateway and `duratask dev` (Alembic, upgraded to
head on the live connection), so a fresh SQLite file or an old one is brought to
the current schema before anything reads it.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from duratask.files import create_private
from duratask.settings import Settings

HERE = Path(__file__).parent


def create_engine(url: str, settings: Settings | None = None) -> AsyncEngine:
    """The store's engine. A new SQLite file is created 0600 first (SQLite gives its
    journal and WAL files the database file's mode), so prompts and outputs in it are
    never readable by other local users; PostgreSQL gets the pool sizes and timeouts of
    `settings`."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        private_sqlite(url)
        # no pre-ping: a file has no server connection to lose, and the ping is a
        # thread round trip on every checkout (bench: a run start opens several)
        return create_async_engine(url)
    s = settings or Settings(_env_file=None)  # type: ignore[call-arg]
    return create_async_engine(
        url,
        pool_pre_ping=True,
        pool_size=s.database_pool_size,
        max_overflow=s.database_max_overflow,
        pool_timeout=s.database_pool_timeout_s,
        pool_recycle=s.database_pool_recycle_s,
        connect_args={"timeout": s.database_connect_timeout_s},
    )


def private_sqlite(url: str) -> None:
    """Create the SQLite file of `url` as 0600 if it does not exist yet (else: nothing)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        create_private(Path(parsed.database))


def _alembic_config() -> Config:
    cfg = Config(str(HERE / "alembic.ini"))
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    return cfg


async def migrate(engine: AsyncEngine) -> None:
    def upgrade(conn: Connection) -> None:
        cfg = _alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")

    async with engine.begin() as conn:
        await conn.run_sync(upgrade)
