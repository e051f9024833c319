"""@mentions notify the mentioned identity (webhook + `GET /v1/mentions`, CLI), and run
lists show each run's `source` and assignee (API and `duratask run list`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.testing import WorkflowEnvironment
from typer.testing import Result

from duratask.store.collab import mentions_in
from tests.helpers import eventually
from tests.integration.test_collab_api import ANA, BOB, KEYS, RAE, SOURCE, _cli, setup
from tests.integration.test_insights import webhook_receiver
from tests.stack import run_stack


def test_mentions_are_parsed_once_each_and_lower_cased() -> None:
    body = "@Bob please look; cc @ana@example.com and @bob again. mail x@y.com, @rae."
    assert mentions_in(body) == ["bob", "ana@example.com", "rae"]
    assert mentions_in("no one here, a@b email") == []


async def test_mentions_notify_and_list_and_run_lists_show_source_and_assignee(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with (
        webhook_receiver() as (url, received),
        run_stack(dev_env, task_queue, tmp_path, api_keys=KEYS, notify_webhook_url=url) as s,
    ):
        done, open_ = await setup(s)
        r = await s.http.post(f"/v1/runs/{done}/comments", headers=ANA,
                              json={"body": "@bob can you check this? @Rae fyi"})  # fmt: skip
        assert r.status_code == 201, r.text
        assert r.json()["mentions"] == ["bob", "rae"]
        # the author mentioning herself is not told
        r = await s.http.post(f"/v1/runs/{open_}/comments", headers=ANA,
                              json={"body": "note to @ana@example.com and @bob", "kind": "note"})  # fmt: skip
        assert r.status_code == 201, r.text

        async def three_sent() -> list[dict[str, object]] | None:
            return received if len(received) >= 3 else None

        await eventually(three_sent)
        await asyncio.sleep(0.3)  # nothing more arrives
        told = sorted((m["data"]["to"], m["run_id"]) for m in received)  # type: ignore[index]
        assert told == sorted([("bob", done), ("rae", done), ("bob", open_)]), received
        assert all(m["channel"] == "mentions" for m in received)

        # bob's mentions, newest first; rae's via ?to=; none for wes
        page = (await s.http.get("/v1/mentions", headers=BOB)).json()
        assert page["to"] == "bob" and [c["run_id"] for c in page["items"]] == [open_, done]
        page = (await s.http.get("/v1/mentions", params={"to": "RAE"}, headers=ANA)).json()
        assert [c["run_id"] for c in page["items"]] == [done]
        r = await s.http.get("/v1/mentions", params={"page_token": "x"}, headers=BOB)
        assert r.status_code == 422

        # a handoff: the run list shows the assignee, and the run's source
        r = await s.http.post(f"/v1/runs/{done}/comments", headers=ANA,
                              json={"body": "yours", "kind": "handoff", "to": "bob"})  # fmt: skip
        assert r.status_code == 201, r.text
        items = (await s.http.get("/v1/runs", headers=RAE)).json()["items"]
        by_id = {i["run_id"]: i for i in items}
        assert by_id[done]["assignee"] == "bob" and by_id[done]["source"] == SOURCE
        assert by_id[open_]["assignee"] is None and by_id[open_]["source"] == {}

        async def cli(token: str, *args: str) -> Result:
            return await asyncio.to_thread(_cli, s.url, token, *args)

        out = await cli("k-bob", "mentions")
        assert out.exit_code == 0 and done in out.output and "can you check" in out.output
        out = await cli("k-rae", "run", "list")
        assert out.exit_code == 0, out.output
        line = next(x for x in out.output.splitlines() if done in x)
        assert "bob" in line and "conversation_id=conv-42" in line, out.output
        await s.http.post(f"/v1/runs/{open_}/cancel", json={"reason": "over"}, headers=ANA)
