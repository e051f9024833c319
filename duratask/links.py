"""Signed links to a request's decision page: made by the worker, checked by the gateway.

A link is the credential of one person for one request: it names its recipient (and
the group through which they were asked), the run, the step, the kind of request and
its visit (when the step started waiting), and expires. It is signed with
`delivery_link_key` through `itsdangerous` (HMAC-SHA256, a salt of its own so a link
can never pass for any other token signed with the same key). The gateway decides as
the recipient through the same paths as an authenticated caller, so the workflow's
own rules (proofs, approvers, distinct votes) apply unchanged; a link is used once
(its id is recorded in the store, duratask/store/links.py).

Who gets a link: each identity of the request, and the members of each
`group:<name>` listed in `delivery_groups`; e-mail goes to those that are addresses.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from duratask.settings import Settings
from workflows.approvals import normalise
from workflows.durations import parse_duration

SALT = "duratask.delivery-link.v1"
MAX_TOKEN_CHARS = 2048
KINDS = ("approval", "input")
_EMAIL = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")


class LinkError(Exception):
    """A link that cannot be used: `status` is the HTTP answer (403 forged, 410 gone, 404
    links off)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Recipient:
    identity: str
    groups: tuple[str, ...] = ()

    @property
    def email(self) -> str | None:
        return self.identity if is_email(self.identity) else None


@dataclass(frozen=True)
class Link:
    """What a verified link says."""

    id: str
    recipient: str
    groups: tuple[str, ...]
    run_id: str
    step_id: str
    kind: str
    visit: str
    expires_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)


def is_email(identity: str) -> bool:
    return bool(_EMAIL.match(identity)) and len(identity) <= 320


def recipients(
    settings: Settings, entries: Iterable[str], skip: Iterable[str] = ()
) -> list[Recipient]:
    """The people `entries` (identities, `group:<name>`) name, each once, minus `skip`."""
    groups_of: dict[str, list[str]] = {}
    order: list[str] = []
    mapping = {normalise(k): v for k, v in settings.delivery_groups.items()}
    skipped = {normalise(s) for s in skip}

    def add(identity: str, group: str | None) -> None:
        key = normalise(identity)
        if not key or key.startswith("group:") or key in skipped:
            return
        if key not in groups_of:
            groups_of[key] = []
            order.append(identity.strip())
        if group and group not in groups_of[key]:
            groups_of[key].append(group)

    for entry in entries:
        if normalise(entry).startswith("group:"):
            name = entry.strip()[len("group:") :].strip()
            for member in mapping.get(normalise(name), []):
                add(member, name)
        else:
            add(entry, None)
    return [Recipient(i, tuple(groups_of[normalise(i)])) for i in order]


def _serializer(settings: Settings) -> URLSafeSerializer:
    if settings.delivery_link_key is None:
        raise LookupError("no link key is configured (DURATASK_DELIVERY_LINK_KEY)")
    return URLSafeSerializer(settings.delivery_link_key.get_secret_value(), salt=SALT)


def expiry(settings: Settings, now: datetime, deadline: datetime | None) -> datetime:
    """When a link made `now` expires: after the link TTL, never after the deadline."""
    until = now + parse_duration(settings.delivery_link_ttl)
    return min(until, deadline) if deadline is not None else until


def make(
    settings: Settings,
    who: Recipient,
    run_id: str,
    step_id: str,
    kind: str,
    visit: str,
    expires_at: datetime,
) -> tuple[str, str]:
    """(link id, URL) of a new link for `who` (raises LookupError without a key)."""
    link_id = secrets.token_urlsafe(12)
    token = _serializer(settings).dumps(
        {"id": link_id, "to": who.identity, "g": list(who.groups), "run": run_id,
         "step": step_id, "k": kind, "v": visit, "exp": int(expires_at.timestamp())}
    )  # fmt: skip
    return link_id, f"{settings.gateway_url().rstrip('/')}/v1/links/{token}"


def read(settings: Settings, token: str, now: datetime | None = None) -> Link:
    """The link `token` is, if it is genuine and not expired; else LinkError."""
    try:
        ser = _serializer(settings)
    except LookupError:
        # off, like the codec server without encryption keys: nothing here to find
        raise LinkError(
            404, "links are off on this gateway (no DURATASK_DELIVERY_LINK_KEY)"
        ) from None
    if len(token) > MAX_TOKEN_CHARS:
        raise LinkError(403, "this link is not valid (it is longer than any link duratask makes)")
    try:
        data = ser.loads(token)
    except BadSignature:
        raise LinkError(403, "this link is not valid: it was changed or not made by duratask")
    try:
        link = Link(
            id=str(data["id"]),
            recipient=str(data["to"]),
            groups=tuple(str(g) for g in data["g"]),
            run_id=str(data["run"]),
            step_id=str(data["step"]),
            kind=str(data["k"]),
            visit=str(data["v"]),
            expires_at=datetime.fromtimestamp(int(data["exp"]), UTC),
        )
    except (KeyError, TypeError, ValueError, OverflowError):
        raise LinkError(403, "this link is not valid: its content is incomplete") from None
    if link.kind not in KINDS:
        raise LinkError(403, "this link is not valid: unknown kind of request")
    if (now or datetime.now(UTC)) >= link.expires_at:
        when = link.expires_at.isoformat(timespec="seconds")
        raise LinkError(410, f"this link expired at {when}; decide in duratask itself")
    return link
