"""The health check activity: every definition's verdict, stored, alerting on change.

It reuses the gateway's health evaluation (`api.insights`) over the same Temporal
visibility reads, with the store-backed alerts, so a scheduled check and a health read
through the gateway agree and together alert once per transition.
"""

from __future__ import annotations

from temporalio import activity

from api.insights.alerts import RegressionAlerts
from api.insights.service import InsightsService
from duratask.access import SYSTEM
from duratask.settings import Settings
from duratask.store.definitions import DefinitionStore
from duratask.store.health import VerdictStore
from workflows.health_check import HEALTH_CHECK_ACTIVITY, HealthCheckInput, HealthCheckResult


class HealthActivities:
    def __init__(self, settings: Settings, store: DefinitionStore) -> None:
        self.settings = settings
        self.store = store
        self.verdicts = VerdictStore(store.engine)

    @activity.defn(name=HEALTH_CHECK_ACTIVITY)
    async def check_all(self, inp: HealthCheckInput) -> HealthCheckResult:
        alerts = RecordingAlerts(self.settings.notify_webhook_url, self.verdicts)
        insights = InsightsService(activity.client(), self.store, self.settings, SYSTEM, alerts)
        limit = inp.max_definitions or self.settings.regression_max_definitions
        found = await insights.regressions(limit)
        return HealthCheckResult(
            checked=found.checked,
            not_healthy={h.definition_id: h.status for h in found.items},
            alerted=sorted(alerts.alerted),
        )


class RecordingAlerts(RegressionAlerts):
    """The alerts of one check, remembering which definitions it alerted for."""

    def __init__(self, webhook_url: str | None, verdicts: VerdictStore) -> None:
        super().__init__(webhook_url, verdicts)
        self.alerted: set[str] = set()

    async def observe(self, health: object) -> bool:  # type: ignore[override]
        from api.insights.health import Health

        assert isinstance(health, Health)
        sent = await super().observe(health)
        if sent:
            self.alerted.add(health.definition_id)
        return sent
