"""@mentions tell the mentioned identity: one notify-webhook message each.

A comment is stored before anyone is told, so the mention is never lost: the webhook
is a courtesy push (sent in the background, logged, not retried), and
`GET /v1/mentions?to=me` is the durable list. The message has the shape of a notify
step's (`run_id`, `step_id`, `channel`, `message`, `data`), on channel `mentions`,
so one receiver handles both.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from duratask.logging import get_logger
from duratask.settings import Settings
from duratask.store.collab import Comment

log = get_logger(__name__)

WEBHOOK_TIMEOUT_S = 10.0
_tasks: set[asyncio.Task[None]] = set()


def payload(comment: Comment, to: str) -> dict[str, Any]:
    return {
        "run_id": comment.run_id,
        "step_id": None,
        "channel": "mentions",
        "message": f"{comment.author} mentioned {to} on run {comment.run_id}",
        "data": {
            "to": to,
            "author": comment.author,
            "comment_id": comment.id,
            "kind": comment.kind,
            "body": comment.body[:500],
        },
    }


def notify_mentions(settings: Settings, comment: Comment) -> None:
    """Send each identity the comment mentions (not its author) a webhook message."""
    targets = [m for m in comment.mentions if m != comment.author.lower()]
    if not targets:
        return
    log.info("mentions", run_id=comment.run_id, comment_id=comment.id, to=targets)
    url = settings.notify_webhook_url
    if not url:
        return
    task = asyncio.create_task(_post(url, [payload(comment, who) for who in targets]))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def _post(url: str, bodies: list[dict[str, Any]]) -> None:
    async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S) as client:
        for body in bodies:
            key = f"mention-{body['data']['comment_id']}-{body['data']['to']}"
            try:
                resp = await client.post(url, json=body, headers={"Idempotency-Key": key})
                log.info("mention sent", to=body["data"]["to"], status_code=resp.status_code)
            except httpx.HTTPError as e:
                log.warning("mention not sent", to=body["data"]["to"], error=str(e))
