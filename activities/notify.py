"""Notifications: always to the log, and to a webhook when one is configured.

The webhook receives the idempotency key as a header, so a retried delivery can be
recognised by the receiver as the same notification. An approval or input request
(`req.delivery`) also carries a signed link per recipient, in the webhook's `links`
and by e-mail when SMTP is configured (activities/delivery.py).
"""

from __future__ import annotations

from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import delivery as delivering
from duratask.logging import get_logger
from duratask.settings import Settings
from workflows import contracts
from workflows.models import NotifyRequest, NotifyResult

log = get_logger(__name__)


async def deliver(
    settings: Settings,
    run_id: str,
    step_id: str | None,
    message: str,
    channel: str | None,
    data: dict[str, Any],
    idempotency_key: str,
    links: list[dict[str, Any]] | None = None,
) -> list[str]:
    log.info("notify", run_id=run_id, step_id=step_id, channel=channel, message=message)
    delivered = ["log"]
    url = settings.notify_webhook_url
    if url:
        payload: dict[str, Any] = {"run_id": run_id, "step_id": step_id, "message": message, "channel": channel,
                   "data": data}  # fmt: skip
        if links is not None:
            payload["links"] = links
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                resp = await client.post(
                    url, json=payload, headers={"Idempotency-Key": idempotency_key}
                )
        except httpx.HTTPError as e:
            raise ApplicationError(f"notify webhook failed: {e}", type="NOTIFY_FAILED") from None
        if resp.status_code >= 500 or resp.status_code == 429:
            raise ApplicationError(
                f"notify webhook answered {resp.status_code}", type="NOTIFY_FAILED"
            )
        if resp.status_code >= 400:
            raise ApplicationError(
                f"notify webhook refused: {resp.status_code}", type="NOTIFY_FAILED",
                non_retryable=True,
            )  # fmt: skip
        delivered.append("webhook")
    return delivered


class NotifyActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @activity.defn(name=contracts.NOTIFY_ACTIVITY)
    async def notify(self, req: NotifyRequest) -> NotifyResult:
        addressed = delivering.address(self.settings, req)
        delivered = await deliver(
            self.settings, req.run_id, req.step_id, req.message, req.channel, req.data,
            req.idempotency_key,
            delivering.webhook_links(addressed) if req.delivery is not None else None,
        )  # fmt: skip
        if await delivering.send_mail(self.settings, req, addressed):
            delivered.append("email")
        return NotifyResult(delivered=delivered)
