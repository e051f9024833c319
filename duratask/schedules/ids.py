"""Schedule ids from names: `sched-<slug>`.

Kept apart from the schedule service so the CLI can name a job file's schedule
without importing the Temporal client (CLI start-up time).
"""

from __future__ import annotations

import re
import secrets


def slugify(text: str, limit: int = 48) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return slug or "job"


def schedule_id_for(name: str, unique: bool = False) -> str:
    slug = slugify(name.removeprefix("sched-"))
    return f"sched-{slug}-{secrets.token_hex(3)}" if unique else f"sched-{slug}"
