"""Settings that every gateway and worker of one deployment must share, checked at start.

Several gateways and workers serve one Temporal namespace and one store. If one of
them has another task queue, its runs are never picked up; another namespace, and the
gateway lists nothing it starts; another approval or encryption key, and decisions or
payloads of the others are refused. Such mistakes fail quietly, so each process
announces what it runs with in the shared store (the `flags` table, one row per live
process, secrets only as fingerprints) and refuses to start when a live peer differs,
with an error naming the setting, both values and the peer.

A peer is live while it refreshes its row (every `peer_ttl_s / 3`); a process that
died stops counting after `peer_ttl_s`. `DURATASK_CHECK_PEERS=false` turns it off.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from duratask.logging import get_logger
from duratask.settings import Settings
from duratask.store.tables import FlagRow

log = get_logger(__name__)

PREFIX = "peer:"
# Settings that must be equal in every process of one deployment. Secret ones are
# compared by fingerprint; a setting a build does not have is skipped.
AGREED = (
    "namespace",
    "task_queue",
    "approval_key",
    "encryption_keys",
    "max_subtask_depth",
    "delivery_link_key",  # workers sign delivered links, gateways check them
)


class PeerMismatch(RuntimeError):
    """A live process of the same deployment runs with a different shared setting."""


def _fingerprint(value: Any) -> str:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, list | tuple):
        value = [v.get_secret_value() if isinstance(v, SecretStr) else v for v in value]
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    raw = json.dumps(value, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(raw.encode()).hexdigest()[:16]


def _key_ring(value: SecretStr | None) -> str:
    """Encryption keys as `primary-fingerprint|fp,fp,...`: processes agree when each one
    can decrypt what the other encrypts (so a key can be added everywhere first, then
    made primary, in two rolling deploys)."""
    if value is None:
        return "none"
    from duratask.codec import parse_keys

    try:
        keys = parse_keys(value.get_secret_value())
    except ValueError:
        return _fingerprint(value)
    fps = [_fingerprint(f"{kid}:{key.hex()}") for kid, key in keys]
    return f"{fps[0]}|{','.join(sorted(fps))}" if fps else "none"


def _rings_agree(a: str, b: str) -> bool:
    if "|" not in a or "|" not in b:
        return a == b
    a_primary, a_all = a.split("|", 1)
    b_primary, b_all = b.split("|", 1)
    return a_primary in b_all.split(",") and b_primary in a_all.split(",")


def shared_settings(settings: Settings) -> dict[str, str]:
    """What this process must agree on: plain values, or fingerprints of secrets."""
    found: dict[str, str] = {}
    for name in AGREED:
        if name not in type(settings).model_fields:
            continue
        value = getattr(settings, name)
        if name == "encryption_keys":
            found[name] = _key_ring(value)
            continue
        secret = "key" in name or isinstance(value, SecretStr)
        found[name] = _fingerprint(value) if secret else str(value)
    return found


def _env_name(setting: str) -> str:
    return "DURATASK_" + setting.upper()


def compare(mine: dict[str, str], role: str, peer: dict[str, Any]) -> str | None:
    """A person-readable difference between this process and `peer`, or None."""
    theirs: dict[str, str] = peer.get("shared", {})
    for name, value in mine.items():
        if name not in theirs or theirs[name] == value:
            continue
        if name == "encryption_keys" and _rings_agree(value, theirs[name]):
            continue
        secret = value.startswith("sha256:") or "|" in value
        shown = (
            f"differs (secret: compare fingerprints {value} here, {theirs[name]} there)"
            if secret
            else f"is {value!r} here but {theirs[name]!r}"
        )
        return (
            f"{_env_name(name)} {shown} in the {peer.get('role', 'process')} "
            f"{peer.get('pid')}@{peer.get('host')} (seen {peer.get('last_seen')}) "
            f"that shares this store; this {role} refuses to start. Give every gateway "
            "and worker of one deployment the same value (or DURATASK_CHECK_PEERS=false)."
        )
    return None


class Peers:
    """This process's row in the shared store, and the check against the others."""

    def __init__(self, engine: AsyncEngine, settings: Settings, role: str) -> None:
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.settings = settings
        self.role = role
        self.key = f"{PREFIX}{uuid.uuid4().hex[:16]}"
        self.shared = shared_settings(settings)
        self.ttl = timedelta(seconds=settings.peer_ttl_s)

    def _row(self) -> str:
        return json.dumps(
            {
                "role": self.role,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "shared": self.shared,
                "last_seen": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )

    async def live(self) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        async with self.sessions() as s:
            rows = (
                await s.execute(select(FlagRow).where(FlagRow.key.like(f"{PREFIX}%")))
            ).scalars()
            peers = []
            for row in rows:
                if row.key == self.key:
                    continue
                with contextlib.suppress(ValueError, KeyError):
                    data = json.loads(row.value)
                    if now - datetime.fromisoformat(data["last_seen"]) <= self.ttl:
                        peers.append(data)
            return peers

    async def check(self) -> None:
        for peer in await self.live():
            problem = compare(self.shared, self.role, peer)
            if problem:
                raise PeerMismatch(problem)

    async def announce(self) -> None:
        async with self.sessions.begin() as s:
            row = await s.get(FlagRow, self.key)
            if row is None:
                s.add(FlagRow(key=self.key, value=self._row()))
            else:
                row.value = self._row()

    async def forget(self) -> None:
        async with self.sessions.begin() as s:
            await s.execute(delete(FlagRow).where(FlagRow.key == self.key))

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.ttl.total_seconds() / 3)
            try:
                await self.announce()
            except Exception as e:  # the store is briefly away: try again next round
                log.warning("peer announcement failed", error=str(e))


@contextlib.asynccontextmanager
async def joined(engine: AsyncEngine, settings: Settings, role: str) -> AsyncIterator[Peers]:
    """Check against the live peers, announce this process while the block runs."""
    peers = Peers(engine, settings, role)
    if settings.check_peers:
        await peers.check()
    await peers.announce()
    task = asyncio.create_task(peers._refresh(), name="peers")
    try:
        yield peers
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(Exception):
            await peers.forget()
