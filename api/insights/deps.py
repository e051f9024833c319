"""The `InsightsService` dependency the insights routers declare."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from api.deps import SettingsDep, StoreDep, TemporalDep
from api.insights.service import InsightsService


def insights_service(
    client: TemporalDep, store: StoreDep, settings: SettingsDep
) -> InsightsService:
    return InsightsService(client, store, settings)


Insights = Annotated[InsightsService, Depends(insights_service)]
