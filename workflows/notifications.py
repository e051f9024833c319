"""Telling people from inside a run: approval and input requests, reminders.

Why one function: a request that cannot be delivered (webhook down, SMTP refusing) must
never fail the step that waits for the answer, since people can still find the request in
their listings. So every notice goes through the notify activity with the same bounded
retries and timeout, and a delivery that still fails comes back as its cause, which the
caller records as an event on the run.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows import contracts
from workflows.models import NotifyRequest, NotifyResult

if TYPE_CHECKING:
    from workflows.host import RunHost

NOTIFY_TIMEOUT = timedelta(minutes=1)
NOTIFY_RETRY = RetryPolicy(maximum_attempts=3)


async def notify_people(host: RunHost, req: NotifyRequest, *, summary: str) -> str | None:
    """Send `req`; None when delivered, else why it could not be."""
    try:
        await workflow.execute_activity(
            contracts.NOTIFY_ACTIVITY,
            req,
            result_type=NotifyResult,
            start_to_close_timeout=NOTIFY_TIMEOUT,
            retry_policy=NOTIFY_RETRY,
            summary=summary,
            priority=host.temporal_priority(),
        )
    except Exception as e:  # ActivityError; cancellation (BaseException) passes through
        why = e.cause if isinstance(e, ActivityError) and e.cause is not None else e
        return str(why)
    return None
