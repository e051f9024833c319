"""Alembic environment: runs on the connection the caller hands over (see db.migrate)."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine

from duratask.store.tables import Base

config = context.config
connection = config.attributes.get("connection")


def run(conn: Any) -> None:
    context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:  # `alembic upgrade head` from the command line, with a sync URL
    url = config.get_main_option("sqlalchemy.url") or ""
    engine = create_engine(url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg"))
    with engine.connect() as conn:
        run(conn)
        conn.commit()
