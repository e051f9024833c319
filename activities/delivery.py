"""Delivering an approval or input request to its people: a signed link each, by the
notify webhook and by e-mail (docs/approvals.md#delivery).

Runs inside the notify activity, so it is retried with it and a failure is only an
event on the run. The links are made here, with a key the workflow never sees, and
go only to the webhook and the mail server: never to logs, errors, or the
activity's result (which is history). E-mail uses the standard library's SMTP client
(STARTTLS or implicit TLS, login when a username is set), off the event loop.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from temporalio.exceptions import ApplicationError

from duratask import links
from duratask.logging import get_logger
from duratask.settings import Settings
from workflows.models import NotifyRequest

log = get_logger(__name__)

LOOPBACK = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Addressed:
    """One recipient of a request and their link (None without a link key)."""

    recipient: links.Recipient
    url: str | None
    expires_at: datetime | None


def address(settings: Settings, req: NotifyRequest) -> list[Addressed]:
    """The request's recipients, each with a fresh link (when a link key is set)."""
    d = req.delivery
    if d is None:
        return []
    people = links.recipients(settings, d.recipients, d.skip)
    now = datetime.now(UTC)
    expires = links.expiry(settings, now, d.deadline)
    if settings.delivery_link_key is None or expires <= now or not req.step_id:
        return [Addressed(p, None, None) for p in people]
    out = []
    for p in people:
        _, url = links.make(settings, p, req.run_id, req.step_id, d.kind, d.visit, expires)
        out.append(Addressed(p, url, expires))
    return out


def webhook_links(addressed: list[Addressed]) -> list[dict[str, Any]]:
    return [
        {"recipient": a.recipient.identity, "url": a.url,
         "expires_at": a.expires_at.isoformat() if a.expires_at else None}
        for a in addressed
    ]  # fmt: skip


def _message(settings: Settings, req: NotifyRequest, a: Addressed) -> EmailMessage:
    d = req.delivery
    assert d is not None and a.recipient.email is not None
    what = "Approval requested" if d.kind == "approval" else "Input requested"
    msg = EmailMessage()
    msg["Subject"] = f"[duratask] {what}: step '{req.step_id}' of run {req.run_id}"
    msg["From"] = settings.smtp_from
    msg["To"] = a.recipient.email
    msg["Message-ID"] = make_msgid(domain="duratask")
    # the same request retried is the same message for the receiving side
    msg["X-Duratask-Idempotency-Key"] = req.idempotency_key
    lines = [req.message, ""]
    if a.url is not None and a.expires_at is not None:
        act = "decide" if d.kind == "approval" else "give the value"
        lines += [
            f"Open this link to {act}. It is yours alone, works once, and expires at "
            f"{a.expires_at.isoformat(timespec='minutes')}:",
            "",
            a.url,
        ]
    else:
        lines.append("Decide in duratask (gateway, CLI or console).")
    msg.set_content("\n".join(lines) + "\n")
    return msg


def _send(settings: Settings, messages: list[EmailMessage]) -> None:
    host, port, timeout = settings.smtp_host or "", settings.smtp_port, settings.smtp_timeout_s
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if settings.smtp_ssl:
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    with smtp:
        if settings.smtp_starttls and not settings.smtp_ssl:
            smtp.starttls(context=context)
        if settings.smtp_username:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            smtp.login(settings.smtp_username, password)
        for m in messages:
            smtp.send_message(m)


async def send_mail(settings: Settings, req: NotifyRequest, addressed: list[Addressed]) -> int:
    """E-mail each recipient that is an address; returns how many were sent."""
    mailed = [a for a in addressed if a.recipient.email is not None]
    if not settings.smtp_host or not mailed:
        return 0
    encrypted = settings.smtp_ssl or settings.smtp_starttls
    if settings.smtp_username and not encrypted and settings.smtp_host not in LOOPBACK:
        raise ApplicationError(
            "refusing to send the SMTP password unencrypted: set DURATASK_SMTP_STARTTLS "
            "or DURATASK_SMTP_SSL",
            type="NOTIFY_FAILED",
            non_retryable=True,
        )
    messages = [_message(settings, req, a) for a in mailed]
    try:
        await asyncio.to_thread(_send, settings, messages)
    except (OSError, smtplib.SMTPException) as e:
        # the server's own words: no password or link is part of them
        reason = type(e).__name__ + (f": {e}" if not isinstance(e, smtplib.SMTPAuthenticationError)
                                     else "")  # fmt: skip
        raise ApplicationError(
            f"e-mail to {len(messages)} recipient(s) failed: {reason}"[:500], type="NOTIFY_FAILED"
        ) from None
    log.info("request e-mailed", run_id=req.run_id, step_id=req.step_id, recipients=len(messages))
    return len(messages)
