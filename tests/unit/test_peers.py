"""Gateways and workers sharing a store refuse to start with other shared settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from duratask.peers import PREFIX, PeerMismatch, joined, shared_settings
from duratask.settings import Settings
from duratask.store.db import create_engine, migrate
from duratask.store.tables import FlagRow


def settings(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[arg-type, call-arg]


async def test_a_peer_with_another_task_queue_is_refused_by_name(db_url: str) -> None:
    engine = create_engine(db_url)
    await migrate(engine)
    try:
        async with joined(engine, settings(task_queue="duratask"), "worker"):
            async with joined(engine, settings(task_queue="duratask"), "gateway"):
                pass  # same settings: fine
            with pytest.raises(PeerMismatch) as e:
                async with joined(engine, settings(task_queue="other"), "gateway"):
                    pass
            message = str(e.value)
            assert "DURATASK_TASK_QUEUE is 'other' here but 'duratask'" in message
            assert "worker" in message
            # off by choice
            async with joined(engine, settings(task_queue="other", check_peers=False), "gw"):
                pass
        # the worker left: its row is gone, the other queue may start now
        async with joined(engine, settings(task_queue="other"), "gateway"):
            pass
    finally:
        await engine.dispose()


async def test_dead_peers_stop_counting(db_url: str) -> None:
    engine = create_engine(db_url)
    await migrate(engine)
    try:
        stale = datetime.now(UTC) - timedelta(seconds=120)
        row = {"role": "worker", "host": "h", "pid": 1, "last_seen": stale.isoformat(),
               "shared": {"task_queue": "old"}}  # fmt: skip
        from sqlalchemy.ext.asyncio import async_sessionmaker

        async with async_sessionmaker(engine).begin() as s:
            s.add(FlagRow(key=f"{PREFIX}dead", value=json.dumps(row)))
        async with joined(engine, settings(task_queue="new", peer_ttl_s=60), "gateway"):
            pass
    finally:
        await engine.dispose()


def test_secrets_are_compared_by_fingerprint_only() -> None:
    fields = Settings.model_fields
    shared = shared_settings(settings(task_queue="q"))
    assert shared["task_queue"] == "q" and shared["namespace"] == "default"
    for name, value in shared.items():
        if "key" in name:
            assert value == "none" or value.startswith("sha256:"), (name, value)
    if "approval_key" in fields:
        a = shared_settings(settings(approval_key=SecretStr("one")))["approval_key"]
        b = shared_settings(settings(approval_key=SecretStr("two")))["approval_key"]
        assert a != b and "one" not in a


def test_encryption_keys_agree_when_each_can_decrypt_the_others_primary() -> None:
    import base64

    from duratask.peers import compare

    k1 = "k1:" + base64.b64encode(b"1" * 32).decode()
    k2 = "k2:" + base64.b64encode(b"2" * 32).decode()

    def ring(keys: str) -> dict[str, str]:
        return shared_settings(settings(encryption_keys=SecretStr(keys)))

    old, adding, rotated, only_new = ring(k1), ring(f"{k1},{k2}"), ring(f"{k2},{k1}"), ring(k2)
    peer = {"role": "worker", "pid": 1, "host": "h"}
    assert compare(adding, "gateway", peer | {"shared": old}) is None  # step 1: add k2
    assert compare(rotated, "gateway", peer | {"shared": adding}) is None  # step 2: k2 primary
    problem = compare(only_new, "gateway", peer | {"shared": old})
    assert problem and "DURATASK_ENCRYPTION_KEYS differs" in problem
    assert "1111" not in problem and base64.b64encode(b"1" * 32).decode() not in problem
