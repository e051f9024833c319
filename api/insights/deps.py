"""The `InsightsService` dependency the insights routers declare."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.deps import PrincipalDep, SettingsDep, StoreDep, TemporalDep
from api.insights.alerts import RegressionAlerts
from api.insights.service import InsightsService
from duratask.store.health import VerdictStore


def insights_service(
    request: Request,
    client: TemporalDep,
    store: StoreDep,
    settings: SettingsDep,
    who: PrincipalDep,
) -> InsightsService:
    state = request.app.state
    alerts = getattr(state, "regression_alerts", None)
    if alerts is None:  # the last verdicts are in the store: shared, kept across restarts
        verdicts = VerdictStore(store.engine)
        alerts = state.regression_alerts = RegressionAlerts(settings.notify_webhook_url, verdicts)
    return InsightsService(client, store, settings, who, alerts)


Insights = Annotated[InsightsService, Depends(insights_service)]
