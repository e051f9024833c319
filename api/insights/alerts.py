"""Regression alerts: a structured log on every health read that finds a regression,
and a webhook post when a definition turns to `regression` (once per transition).

The last verdict per definition is kept in the gateway's memory: a restarted gateway
alerts again on the next read that finds a regression, which is the safe side.
The webhook is the one `notify` steps use (`DURATASK_NOTIFY_WEBHOOK_URL`), with the
same body shape, on the `regressions` channel.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from api.insights.health import Health
from duratask.logging import get_logger

log = get_logger(__name__)
WEBHOOK_TIMEOUT_S = 10.0


class RegressionAlerts:
    def __init__(self, webhook_url: str | None) -> None:
        self.webhook_url = webhook_url
        self.last: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def observe(self, health: Health) -> None:
        previous = self.last.get(health.definition_id)
        self.last[health.definition_id] = health.status
        if health.status != "regression":
            return
        reasons = [r.message for r in health.reasons if r.level == "regression"]
        log.warning("regression detected", definition=health.definition_id, reasons=reasons,
                    previous=previous)  # fmt: skip
        if self.webhook_url and previous != "regression":
            task = asyncio.create_task(self._post(payload(health, previous)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _post(self, body: dict[str, Any]) -> None:
        assert self.webhook_url
        try:
            async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S) as client:
                resp = await client.post(self.webhook_url, json=body)
            log.info("regression alert sent", definition=body["data"]["definition_id"],
                     status_code=resp.status_code)  # fmt: skip
        except httpx.HTTPError as e:
            log.warning("regression alert failed", definition=body["data"]["definition_id"],
                        error=str(e))  # fmt: skip


def payload(health: Health, previous: str | None) -> dict[str, Any]:
    reasons = [r for r in health.reasons if r.level == "regression"]
    return {
        "run_id": health.last_run_id,
        "step_id": None,
        "channel": "regressions",
        "message": f"regression detected in {health.definition_id}: "
        + "; ".join(r.message for r in reasons),
        "data": {
            "definition_id": health.definition_id,
            "status": health.status,
            "previous": previous,
            "reasons": [r.model_dump() for r in health.reasons],
        },
    }
