"""Delivery of approval and input requests (issue 18 item 6, docs/approvals.md#delivery),
on the real stack: the gateway and worker on the Temporal dev server, a loopback
webhook receiver and a real local SMTP server (aiosmtpd). Each request reaches its
people with a signed link; the link decides once, only as its recipient, until it
expires; its page never decides on GET."""

from __future__ import annotations

import asyncio
import contextlib
import email
import json
import re
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from itsdangerous.encoding import base64_decode, base64_encode
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from duratask import links
from duratask.settings import Settings
from tests.helpers import eventually
from tests.integration.test_insights import webhook_receiver
from tests.stack import Stack, free_port, run_stack

LINK_KEY = "test-delivery-link-key-0123456789abcdef"
KEYS: list[dict[str, Any]] = [
    {"key": "k-ann", "identity": "ann@example.com",
     "scopes": ["tasks:read", "tasks:write", "tasks:approve"]},
    {"key": "k-bob", "identity": "bob@example.com",
     "scopes": ["tasks:read", "tasks:write", "tasks:approve"]},
]  # fmt: skip
ANN = {"Authorization": "Bearer k-ann"}
BOB = {"Authorization": "Bearer k-bob"}
URL = re.compile(r"https?://\S+/v1/links/(\S+)")


class Mailbox:
    """aiosmtpd's handler: every message the real SMTP server accepted."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[int, Mailbox]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, box
    finally:
        controller.stop()


@contextlib.asynccontextmanager
async def delivering(
    dev_env: WorkflowEnvironment, task_queue: str, tmp: Path, **kw: Any
) -> AsyncIterator[tuple[Stack, list[dict[str, Any]], Mailbox]]:
    with smtp_server() as (port, box):
        async with (
            webhook_receiver() as (hook, received),
            run_stack(
                dev_env, task_queue, tmp, api_keys=KEYS, notify_webhook_url=hook,
                delivery_link_key=SecretStr(LINK_KEY), smtp_host="127.0.0.1", smtp_port=port,
                smtp_starttls=False, smtp_from="duratask@example.com", **kw,
            ) as s,
        ):  # fmt: skip
            yield s, received, box


def token_of(url: str) -> str:
    m = URL.search(url)
    assert m, url
    return m.group(1)


async def mailed(box: Mailbox, n: int) -> bool:
    return len(box.messages) >= n


def mail_links(box: Mailbox) -> dict[str, str]:
    """Recipient -> link token, from the e-mails received."""
    out = {}
    for m in box.messages:
        body = m.get_payload(decode=True)
        assert isinstance(body, bytes)
        out[str(m["To"])] = token_of(body.decode())
    return out


async def hook_links(received: list[dict[str, Any]], channel: str) -> dict[str, str]:
    async def arrived() -> list[dict[str, Any]] | None:
        found = [m for m in received if m.get("channel") == channel and m.get("links")]
        return found or None

    (message,) = await eventually(arrived, 60)
    return {x["recipient"]: token_of(x["url"]) for x in message["links"]}


async def wait_status(s: Stack, run_id: str, status: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        r = await s.http.get(f"/v1/runs/{run_id}", headers=ANN)
        return r.json() if r.status_code == 200 and r.json()["status"] == status else None

    state: dict[str, Any] = await eventually(reached, 60)
    return state


async def finished(s: Stack, run_id: str) -> dict[str, Any]:
    r = await s.http.get(f"/v1/runs/{run_id}/result", params={"wait": 30}, headers=ANN)
    assert r.status_code == 200, r.text
    r = await s.http.get(f"/v1/runs/{run_id}", headers=ANN)
    out: dict[str, Any] = r.json()
    return out


def tamper(token: str) -> str:
    """The same link with its recipient changed (and the signature left as it was)."""
    payload, sig = token.rsplit(".", 1)
    compressed = payload.startswith(".")
    raw = base64_decode(payload.lstrip("."))
    data = json.loads(zlib.decompress(raw) if compressed else raw)
    assert data["to"] == "ann@example.com"
    data["to"] = "bob@example.com"
    return f"{base64_encode(json.dumps(data).encode()).decode()}.{sig}"


async def test_an_approval_is_delivered_and_decided_through_its_links(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    async with delivering(
        dev_env, task_queue, tmp_path, delivery_groups={"leads": ["lee@example.com"]}
    ) as (s, received, box):
        body = {
            "id": "ship",
            "steps": [
                {"id": "review", "action": "approval", "prompt": "Ship version 2?",
                 "approvers": ["ann@example.com", "group:leads"], "min_approvals": 2,
                 "timeout": "1h"},
                {"id": "after", "action": "llm_call", "prompt": "shipped"},
            ],
        }  # fmt: skip
        r = await s.http.put("/v1/definitions/ship", json=body, headers=ANN)
        assert r.status_code == 201, r.text
        r = await s.http.post("/v1/runs", json={"definition_id": "ship"}, headers=ANN)
        run_id = r.json()["run_id"]

        # the webhook and the SMTP server each got one link per person
        by_hook = await hook_links(received, "approvals")
        assert sorted(by_hook) == ["ann@example.com", "lee@example.com"]
        await eventually(lambda: mailed(box, 2))
        by_mail = mail_links(box)
        assert by_mail == by_hook  # one link per person and request, by every channel
        subject = str(box.messages[0]["Subject"])
        assert "Approval requested" in subject and run_id in subject
        assert all(str(m["From"]) == "duratask@example.com" for m in box.messages)

        # no link, nor the key, is anywhere in the run's history
        history = json.dumps((await s.client.get_workflow_handle(run_id).fetch_history()).to_json())
        for token in [*by_hook.values(), *by_mail.values()]:
            assert token not in history and token[:40] not in history
        assert LINK_KEY not in history

        ann_link = f"/v1/links/{by_mail['ann@example.com']}"
        # the page shows the request; fetching it (twice) decides nothing
        for _ in range(2):
            r = await s.http.get(ann_link)
            assert r.status_code == 200, r.text
            assert "Ship version 2?" in r.text and 'value="approve"' in r.text
            assert r.headers["x-frame-options"] == "DENY"
        r = await s.http.get(ann_link, headers={"Accept": "application/json"})
        assert r.json()["kind"] == "approval" and r.json()["approvals"] == 0, r.text
        state = await wait_status(s, run_id, "awaiting_approval")
        assert state["pending_approvals"][0]["votes"] == []

        # bound to ann: bob cannot use it, and a link changed to name bob is not valid
        r = await s.http.post(ann_link, data={"decision": "approve"}, headers=BOB)
        assert r.status_code == 403 and "someone else" in r.json()["detail"], r.text
        r = await s.http.post(f"/v1/links/{tamper(by_mail['ann@example.com'])}",
                              data={"decision": "approve"})  # fmt: skip
        assert r.status_code == 403 and "not valid" in r.json()["detail"], r.text
        r = await s.http.post(ann_link, json={"decision": "maybe"})
        assert r.status_code == 422, r.text

        # ann decides through the page's form (no bearer token): counted once
        r = await s.http.post(ann_link, data={"decision": "approve", "comment": "looks good"})
        assert r.status_code == 200, r.text
        assert "1 of 2" in r.text
        for method in ("POST", "GET"):
            r = await s.http.request(method, ann_link, data={"decision": "approve"}
                                     if method == "POST" else None)  # fmt: skip
            assert r.status_code == 410 and "already used" in r.json()["detail"], r.text
        # a second link for ann (a reminder's): the run itself refuses her second vote
        link = links.read(s.settings, by_mail["ann@example.com"])
        _, again = links.make(s.settings, links.Recipient("ann@example.com"), run_id, "review",
                              "approval", link.visit, link.expires_at)  # fmt: skip
        r = await s.http.post(f"/v1/links/{token_of(again)}", json={"decision": "approve"})
        assert r.status_code == 409 and "already decided" in r.json()["detail"], r.text

        # lee (asked as a member of group:leads) completes the count with JSON
        r = await s.http.post(f"/v1/links/{by_hook['lee@example.com']}",
                              json={"decision": "approve"})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["done"] is True and r.json()["approvals"] == 2
        result = await finished(s, run_id)
        assert result["status"] == "completed", result
        out = result["steps"][0]["output"]
        assert [v["approver"] for v in out["votes"]] == ["ann@example.com", "lee@example.com"]
        assert out["votes"][0]["comment"] == "looks good"
        # once decided, no link to the request works any more
        _, late = links.make(s.settings, links.Recipient("lee@example.com", ("leads",)), run_id,
                             "review", "approval", link.visit, link.expires_at)  # fmt: skip
        r = await s.http.get(f"/v1/links/{token_of(late)}")
        assert r.status_code == 409 and "no longer waits" in r.json()["detail"], r.text

    # what the gateway and the worker logged: no link, no key
    logged = "".join(capfd.readouterr())
    assert "request e-mailed" in logged and "/v1/links/{token}" in logged
    for token in [*by_hook.values(), token_of(again), token_of(late)]:
        assert token not in logged and token[-20:] not in logged
    assert LINK_KEY not in logged


async def test_links_expire_and_are_bound_to_their_request(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with delivering(dev_env, task_queue, tmp_path, delivery_link_ttl="2s") as (
        s,
        received,
        _,
    ):
        body = {"id": "gate", "steps": [
            {"id": "review", "action": "approval", "approvers": ["ann@example.com"],
             "timeout": "1h"}]}  # fmt: skip
        await s.http.put("/v1/definitions/gate", json=body, headers=ANN)
        run_id = (await s.http.post("/v1/runs", json={"definition_id": "gate"},
                                    headers=ANN)).json()["run_id"]  # fmt: skip
        token = (await hook_links(received, "approvals"))["ann@example.com"]
        link = links.read(s.settings, token)
        assert link.run_id == run_id and link.step_id == "review"

        # a link to another visit of the step, or signed with another key, is refused
        other = Settings(_env_file=None, delivery_link_key=SecretStr("another-key"))  # type: ignore[call-arg]
        who = links.Recipient("ann@example.com")
        _, forged = links.make(other, who, run_id, "review", "approval", link.visit,
                               link.expires_at)  # fmt: skip
        r = await s.http.get(f"/v1/links/{token_of(forged)}")
        assert r.status_code == 403, r.text
        _, stale = links.make(s.settings, who, run_id, "review", "approval",
                              "2020-01-01T00:00:00+00:00", link.expires_at)  # fmt: skip
        r = await s.http.post(f"/v1/links/{token_of(stale)}", json={"decision": "approve"})
        assert r.status_code == 409 and "no longer waits" in r.json()["detail"], r.text

        # after its lifetime the link is refused, and the run still waits
        await asyncio.sleep(max(0.0, link.expires_at.timestamp() - time.time()) + 0.5)
        r = await s.http.post(f"/v1/links/{token}", json={"decision": "approve"})
        assert r.status_code == 410 and "expired" in r.json()["detail"], r.text
        state = await wait_status(s, run_id, "awaiting_approval")
        assert state["pending_approvals"][0]["votes"] == []
        r = await s.http.get(f"/v1/links/{'x' * (links.MAX_TOKEN_CHARS + 1)}")
        assert r.status_code == 422, r.text


async def test_an_input_request_is_delivered_and_completed_through_its_link(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with delivering(dev_env, task_queue, tmp_path) as (s, received, box):
        schema = {
            "type": "object",
            "properties": {
                "account": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{6}$"},
                "amount": {"type": "number", "minimum": 0},
                "notify_customer": {"type": "boolean", "default": True},
            },
            "required": ["account", "amount"],
        }
        body = {"id": "refund", "steps": [
            {"id": "details", "action": "input", "schema": schema, "timeout": "1h",
             "prompt": "Which account gets the refund?"},
            {"id": "done", "action": "llm_call", "prompt": "{{ steps.details.output.account }}"},
        ]}  # fmt: skip
        await s.http.put("/v1/definitions/refund", json=body, headers=ANN)
        run_id = (await s.http.post("/v1/runs", json={"definition_id": "refund"},
                                    headers=ANN)).json()["run_id"]  # fmt: skip

        # the owner is asked: by webhook and by e-mail
        assert list(await hook_links(received, "inputs")) == ["ann@example.com"]
        await eventually(lambda: mailed(box, 1))
        token = mail_links(box)["ann@example.com"]
        assert "Input requested" in str(box.messages[0]["Subject"])
        page = f"/v1/links/{token}"
        r = await s.http.get(page)
        assert r.status_code == 200, r.text
        assert 'name="field.account"' in r.text and "Which account" in r.text

        # invalid values: 422 naming the field; the link stays usable
        r = await s.http.post(page, data={"field.account": "GB123456", "field.amount": "lots"})
        assert r.status_code == 422, r.text
        assert r.json()["problems"][0]["field"] == "amount"
        r = await s.http.post(page, data={"field.account": "nope", "field.amount": "40"})
        assert r.status_code == 422, r.text
        assert [p["field"] for p in r.json()["problems"]] == ["account"]

        r = await s.http.post(page, data={"field.account": "GB123456", "field.amount": "40",
                                          "field.notify_customer": "false"})  # fmt: skip
        assert r.status_code == 200 and "accepted" in r.text, r.text
        r = await s.http.post(page, data={"field.account": "GB123456", "field.amount": "1"})
        assert r.status_code == 410, r.text
        result = await finished(s, run_id)
        assert result["status"] == "completed", result
        value = result["steps"][0]["output"]
        assert value == {"account": "GB123456", "amount": 40.0, "notify_customer": False}
        events = (await s.http.get(f"/v1/runs/{run_id}/events", headers={
            **ANN, "Accept": "application/json"})).json()  # fmt: skip
        received_by = [e["data"].get("by") for e in events["events"]
                       if e["type"] == "input.received"]  # fmt: skip
        assert received_by == ["ann@example.com"]


async def test_a_failed_delivery_never_fails_the_run(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    """The SMTP server is gone: the run records it and still waits for approval."""
    port = free_port()  # nothing listens here
    async with run_stack(
        dev_env, task_queue, tmp_path, api_keys=KEYS, delivery_link_key=SecretStr(LINK_KEY),
        smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False, smtp_timeout_s=2.0,
    ) as s:  # fmt: skip
        body = {"id": "gate", "steps": [
            {"id": "review", "action": "approval", "approvers": ["ann@example.com"],
             "timeout": "1h"}]}  # fmt: skip
        await s.http.put("/v1/definitions/gate", json=body, headers=ANN)
        run_id = (await s.http.post("/v1/runs", json={"definition_id": "gate"},
                                    headers=ANN)).json()["run_id"]  # fmt: skip

        async def failed() -> dict[str, Any] | None:
            r = await s.http.get(f"/v1/runs/{run_id}", headers=ANN)
            kinds = {e["type"]: e for e in r.json().get("events", [])}
            return kinds.get("approval.notify_failed")

        event = await eventually(failed, 90)
        assert "e-mail" in event["message"] and LINK_KEY not in json.dumps(event)
        assert "/v1/links/" not in json.dumps(event)
        state = await wait_status(s, run_id, "awaiting_approval")
        assert state["status"] == "awaiting_approval"
        r = await s.http.post(f"/v1/runs/{run_id}/approvals", json={"decision": "approve"},
                              headers=ANN)  # fmt: skip
        assert r.status_code == 200, r.text
