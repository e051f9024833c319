"""Regression alerts: a structured log on every health check that finds a regression,
and a webhook post when a definition turns to `regression` (once per transition).

Each check's verdict is stored (`duratask.store.health`): the transition is decided
by the store, not by this process's memory, so a restarted gateway, a second gateway
and the scheduled check (`HealthCheckWorkflow`) together alert once per transition.
The webhook is the one `notify` steps use (`DURATASK_NOTIFY_WEBHOOK_URL`), with the
same body shape, on the `regressions` channel.
"""

from __future__ import annotations

from typing import Any

import httpx

from api.insights.health import Health
from duratask.logging import get_logger
from duratask.store.health import VerdictStore

log = get_logger(__name__)
WEBHOOK_TIMEOUT_S = 10.0


class RegressionAlerts:
    def __init__(self, webhook_url: str | None, verdicts: VerdictStore) -> None:
        self.webhook_url = webhook_url
        self.verdicts = verdicts

    async def observe(self, health: Health) -> bool:
        """Record the verdict; alert if it just turned to regression. True if alerted."""
        changed = await self.verdicts.record(
            health.definition_id, health.status, health.model_dump_json()
        )
        if health.status != "regression":
            return False
        reasons = [r.message for r in health.reasons if r.level == "regression"]
        previous = changed.previous if changed else "regression"
        log.warning("regression detected", definition=health.definition_id, reasons=reasons,
                    previous=previous)  # fmt: skip
        if changed is None or not self.webhook_url:
            return False
        await self._post(payload(health, changed.previous))
        return True

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
