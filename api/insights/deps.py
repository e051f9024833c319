"""The `InsightsService` dependency the insights routers declare."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.deps import PrincipalDep, SettingsDep, StoreDep, TemporalDep
from api.insights.alerts import RegressionAlerts
from api.insights.service import InsightsService


def insights_service(
    request: Request,
    client: TemporalDep,
    store: StoreDep,
    settings: SettingsDep,
    who: PrincipalDep,
) -> InsightsService:
    state = request.app.state
    alerts = getattr(state, "regression_alerts", None)
    if alerts is None:  # one per gateway: it remembers each definition's last verdict
        alerts = state.regression_alerts = RegressionAlerts(settings.notify_webhook_url)
    return InsightsService(client, store, settings, who, alerts)


Insights = Annotated[InsightsService, Depends(insights_service)]
