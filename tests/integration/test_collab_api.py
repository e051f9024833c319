"""Ratings, the comment/note/handoff thread and run provenance through the real gateway,
worker, dev server and SQLite store, with static API keys so identity and scopes are real;
and the CLI commands (in a thread, through the same gateway).
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from cli.main import app as cli_app
from duratask.settings import get_settings
from tests.helpers import eventually
from tests.stack import Stack, run_stack

# one team, `crew`: ana's runs are shared with it, so the others see and discuss them
CREW = ["crew"]
TEAM = {"team": "crew"}
KEYS: list[dict[str, Any]] = [
    {"key": "k-ana", "identity": "ana@example.com", "scopes": ["tasks:read", "tasks:write"],
     "groups": CREW},
    {"key": "k-bob", "identity": "bob", "scopes": ["tasks:read", "tasks:write"], "groups": CREW},
    {"key": "k-rae", "identity": "Rae", "scopes": ["tasks:read"], "groups": CREW},
    {"key": "k-wes", "identity": "wes", "scopes": ["tasks:write"], "groups": CREW},
]  # fmt: skip
QUICK = {
    "id": "quick",
    "steps": [{"id": "say", "action": "llm_call", "prompt": "Hi"}],
}
SLOW = {
    "id": "slow",
    "steps": [{"id": "nap", "action": "wait", "duration": "1h"}],
}
SOURCE = {
    "kind": "chat",
    "conversation_id": "conv-42",
    "message_id": "msg-7",
    "url": "https://chat.example.com/c/conv-42#msg-7",
}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


ANA, BOB, RAE, WES = auth("k-ana"), auth("k-bob"), auth("k-rae"), auth("k-wes")


async def start(s: Stack, def_id: str, **body: Any) -> dict[str, Any]:
    body.setdefault("team", "crew")
    r = await s.http.post("/v1/runs", json={"definition_id": def_id, **body}, headers=ANA)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def finished(s: Stack, run_id: str) -> None:
    r = await s.http.get(f"/v1/runs/{run_id}/result", params={"wait": 60}, headers=ANA)
    assert r.status_code == 200 and r.json()["status"] == "completed", r.text


async def get_run(s: Stack, run_id: str) -> dict[str, Any]:
    r = await s.http.get(f"/v1/runs/{run_id}", headers=RAE)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def setup(s: Stack) -> tuple[str, str]:
    for body in (QUICK, SLOW):
        r = await s.http.put(f"/v1/definitions/{body['id']}", json=body, params=TEAM, headers=ANA)
        assert r.status_code == 201, r.text
    done = (await start(s, "quick", source=SOURCE))["run_id"]
    open_ = (await start(s, "slow"))["run_id"]
    await finished(s, done)
    return done, open_


async def test_ratings_thread_handoffs_provenance_and_every_error(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with run_stack(dev_env, task_queue, tmp_path, api_keys=KEYS) as s:
        done, open_ = await setup(s)
        http = s.http

        # ---- provenance round trip; a run without source behaves as before
        state = await get_run(s, done)
        assert state["source"] == SOURCE and state["status"] == "completed"
        assert state["rating_summary"] == {"up": 0, "down": 0} and state["comment_count"] == 0
        assert state["assignee"] is None
        assert (await get_run(s, open_))["source"] == {}
        for bad, says in (({"url": "ftp://x"}, "http(s)"), ({"kind": 3}, "valid string"),
                          ({"bad key!": "x"}, "letters, digits")):  # fmt: skip
            r = await http.post("/v1/runs", json={"definition_id": "quick", "source": bad},
                                headers=ANA)  # fmt: skip
            assert r.status_code == 422 and says in r.text, r.text

        # ---- ratings: two identities, re-rating replaces, the run view counts them
        rate = f"/v1/runs/{done}/rating"
        r = await http.put(rate, json={"score": "up", "comment": "spot on"}, headers=ANA)
        assert r.status_code == 201, r.text
        assert r.json()["identity"] == "ana@example.com" and r.json()["definition_id"] == "quick"
        r = await http.put(rate, json={"score": "down", "comment": "too short"}, headers=BOB)
        assert r.status_code == 201, r.text
        r = await http.put(rate, json={"score": "down"}, headers=ANA)
        assert r.status_code == 200 and r.json()["comment"] is None, r.text
        r = await http.get(f"/v1/runs/{done}/ratings", headers=RAE)
        assert r.status_code == 200, r.text
        listing = r.json()
        assert listing["summary"] == {"up": 0, "down": 2}
        assert {(i["identity"], i["score"]) for i in listing["items"]} == {
            ("ana@example.com", "down"), ("bob", "down"),
        }  # fmt: skip
        r = await http.put(rate, json={"score": "up", "comment": "on reflection"}, headers=ANA)
        assert r.status_code == 200
        assert (await get_run(s, done))["rating_summary"] == {"up": 1, "down": 1}
        r = await http.delete(rate, headers=BOB)
        assert r.status_code == 204
        assert (await http.delete(rate, headers=BOB)).status_code == 404
        assert (await get_run(s, done))["rating_summary"] == {"up": 1, "down": 0}
        r = await http.get("/v1/ratings", params={"definition_id": "quick"}, headers=RAE)
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["summary"] == {"up": 1, "down": 0} and report["total"] == 1
        assert report["items"][0]["comment"] == "on reflection"
        assert (await http.get("/v1/ratings", headers=WES)).status_code == 403

        # ---- rating errors
        r = await http.put(f"/v1/runs/{open_}/rating", json={"score": "up"}, headers=ANA)
        assert r.status_code == 409, r.text
        assert "is running" in r.json()["detail"] and r.json()["run_status"] == "running"
        r = await http.put("/v1/runs/run-nope/rating", json={"score": "up"}, headers=ANA)
        assert r.status_code == 404 and "run-nope" in r.json()["detail"]
        assert (await http.get("/v1/runs/run-nope/ratings", headers=RAE)).status_code == 404
        r = await http.put(rate, json={"score": "meh"}, headers=ANA)
        assert r.status_code == 422 and "score" in r.json()["detail"]
        r = await http.put(rate, json={"score": "up", "identity": "bob"}, headers=ANA)
        assert r.status_code == 422 and "caller's identity" in r.json()["detail"]
        r = await http.put(rate, json={"score": "up"}, headers=RAE)
        assert r.status_code == 403 and "tasks:write" in r.json()["detail"]
        assert (await http.put(rate, json={"score": "up"})).status_code == 401
        assert (await http.get(f"/v1/runs/{done}/ratings", headers=WES)).status_code == 403

        # ---- the thread on an open run: comment, note, handoff; chronological, paginated
        thread = f"/v1/runs/{open_}/comments"
        posts = [
            ({"body": "looking into the wait"}, ANA),
            ({"body": "1h wait is on purpose", "kind": "note"}, BOB),
            ({"body": "Bob, yours", "kind": "handoff", "to": "bob"}, ANA),
        ]
        for body, who in posts:
            r = await http.post(thread, json=body, headers=who)
            assert r.status_code == 201, r.text
        assert r.json()["author"] == "ana@example.com" and r.json()["to"] == "bob"
        r = await http.get(thread, params={"page_size": 2}, headers=RAE)
        page = r.json()
        assert [c["kind"] for c in page["items"]] == ["comment", "note"]
        assert [c["author"] for c in page["items"]] == ["ana@example.com", "bob"]
        assert page["assignee"]["assignee"] == "bob" and page["next_page_token"]
        r = await http.get(thread, params={"page_token": page["next_page_token"]}, headers=RAE)
        rest = r.json()
        assert [c["body"] for c in rest["items"]] == ["Bob, yours"] and not rest["next_page_token"]
        r = await http.get(thread, params={"kind": "note"}, headers=RAE)
        assert [c["body"] for c in r.json()["items"]] == ["1h wait is on purpose"]
        view = await get_run(s, open_)
        assert (view["comment_count"], view["assignee"]) == (3, "bob")

        # ---- handoffs: what was handed to me, and whether I still hold it
        async def handed(who: dict[str, str], **params: Any) -> list[tuple[str, bool]]:
            r = await http.get("/v1/handoffs", params=params, headers=who)
            assert r.status_code == 200, r.text
            return [(i["run_id"], i["current"]) for i in r.json()["items"]]

        assert await handed(BOB) == [(open_, True)]
        r = await http.post(thread, json={"body": "over to Rae", "kind": "handoff", "to": "rae"},
                            headers=BOB)  # fmt: skip
        assert r.status_code == 201, r.text
        assert await handed(BOB) == [(open_, False)]
        assert await handed(BOB, current="true") == []
        assert await handed(RAE) == [(open_, True)]  # identities compare case-insensitively
        assert await handed(ANA, to="bob") == [(open_, False)]
        assert await handed(ANA) == []
        assert (await get_run(s, open_))["assignee"] == "rae"

        # ---- thread errors
        bad_bodies = [
            ({"body": "   "}, "must not be empty"),
            ({"body": "x", "kind": "chat"}, "kind"),
            ({"body": "x", "kind": "handoff"}, "needs 'to'"),
            ({"body": "x", "kind": "handoff", "to": "  "}, "needs 'to'"),
            ({"body": "x", "kind": "note", "to": "bob"}, "only for kind 'handoff'"),
            ({"body": "x", "author": "bob"}, "caller's identity"),
            ({"text": "x"}, "body"),
        ]
        for body, says in bad_bodies:
            r = await http.post(thread, json=body, headers=ANA)
            assert r.status_code == 422 and says in r.json()["detail"], (body, r.text)
        r = await http.post("/v1/runs/run-nope/comments", json={"body": "x"}, headers=ANA)
        assert r.status_code == 404
        assert (await http.get("/v1/runs/run-nope/comments", headers=RAE)).status_code == 404
        r = await http.post(thread, json={"body": "x"}, headers=RAE)
        assert r.status_code == 403
        assert (await http.get(thread, headers=WES)).status_code == 403
        assert (await http.get("/v1/handoffs", headers=WES)).status_code == 403
        r = await http.get(thread, params={"page_token": "zzz"}, headers=RAE)
        assert r.status_code == 422 and "page_token" in r.json()["detail"]

        # ---- a closed run keeps its thread open, and a cancelled run can be rated
        r = await http.post(f"/v1/runs/{open_}/cancel", json={"reason": "done"}, headers=ANA)
        assert r.status_code == 202
        for _ in range(300):
            r = await http.put(f"/v1/runs/{open_}/rating", json={"score": "down"}, headers=BOB)
            if r.status_code != 409:
                break
            await asyncio.sleep(0.1)
        assert r.status_code == 201, r.text
        r = await http.post(f"/v1/runs/{done}/comments", json={"body": "post-mortem"},
                            headers=BOB)  # fmt: skip
        assert r.status_code == 201


async def test_child_runs_are_rated_and_discussed_by_their_own_id(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with run_stack(dev_env, task_queue, tmp_path, api_keys=KEYS) as s:
        parent = {"id": "parent", "steps": [{"id": "sub", "action": "sub_task", "task": "quick"}]}
        for body in (QUICK, parent):
            r = await s.http.put(
                f"/v1/definitions/{body['id']}", json=body, params=TEAM, headers=ANA
            )
            assert r.status_code == 201, r.text
        run_id = (await start(s, "parent", source=SOURCE))["run_id"]
        await finished(s, run_id)
        (child,) = (await get_run(s, run_id))["children"]
        child_id = child["run_id"]
        assert "/" in child_id
        child_state = await get_run(s, child_id)
        assert child_state["source"] == SOURCE  # a child keeps its parent's provenance
        r = await s.http.put(f"/v1/runs/{child_id}/rating", json={"score": "up"}, headers=BOB)
        assert r.status_code == 201, r.text
        r = await s.http.post(f"/v1/runs/{child_id}/comments", json={"body": "ok"}, headers=BOB)
        assert r.status_code == 201, r.text
        r = await s.http.get(f"/v1/runs/{child_id}/comments", headers=RAE)
        assert [c["body"] for c in r.json()["items"]] == ["ok"]
        r = await s.http.get(f"/v1/runs/{child_id}/ratings", headers=RAE)
        assert r.json()["summary"] == {"up": 1, "down": 0}
        child_view = await get_run(s, child_id)
        assert child_view["rating_summary"] == {"up": 1, "down": 0}
        assert child_view["comment_count"] == 1
        parent_view = await get_run(s, run_id)
        assert parent_view["rating_summary"] == {"up": 0, "down": 0}
        assert parent_view["comment_count"] == 0


async def test_comments_on_a_running_run_are_in_its_events_and_stream(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    """Written while the run goes: the thread entry is also a `run.comment` event, live;
    once the run is closed it is only in the thread (the run's history is final)."""
    async with run_stack(dev_env, task_queue, tmp_path, api_keys=KEYS) as s:
        done, open_ = await setup(s)
        long_note = "x" * 800
        for body in ({"body": "looking into it"},
                     {"body": long_note, "kind": "note"},
                     {"body": "yours now", "kind": "handoff", "to": "bob"}):  # fmt: skip
            r = await s.http.post(f"/v1/runs/{open_}/comments", json=body, headers=ANA)
            assert r.status_code == 201, r.text

        async def announced() -> list[dict[str, Any]] | None:
            events = (await get_run(s, open_))["events"]
            found = [e for e in events if e["type"] == "run.comment"]
            return found if len(found) == 3 else None

        found = await eventually(announced, 30)
        assert [e["data"]["kind"] for e in found] == ["comment", "note", "handoff"]
        assert {e["data"]["author"] for e in found} == {"ana@example.com"}
        assert found[0]["data"]["body"] == "looking into it" and found[0]["step_id"] == "nap"
        assert len(found[1]["data"]["body"]) < 600  # a long note is cut in the events...
        r = await s.http.get(f"/v1/runs/{open_}/comments", headers=RAE)
        assert r.json()["items"][1]["body"] == long_note  # ...and whole in the thread
        assert found[2]["data"]["to"] == "bob" and "-> bob" in found[2]["message"]
        page = (await s.http.get(f"/v1/runs/{open_}/events", params={"types": "run.comment"},
                                 headers={**RAE, "Accept": "application/json"})).json()  # fmt: skip
        assert [e["data"]["kind"] for e in page["events"]] == ["comment", "note", "handoff"]
        # a closed run takes the comment into its thread only
        r = await s.http.post(f"/v1/runs/{done}/comments", json={"body": "late"}, headers=ANA)
        assert r.status_code == 201, r.text
        assert not [e for e in (await get_run(s, done))["events"] if e["type"] == "run.comment"]
        await s.http.post(f"/v1/runs/{open_}/cancel", json={"reason": "test over"}, headers=ANA)


def _cli(url: str, token: str, *args: str) -> Result:
    os.environ.update(DURATASK_PUBLIC_URL=url, DURATASK_TOKEN=token)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli_app, list(args), env={"COLUMNS": "200"})
    finally:
        for key in ("DURATASK_PUBLIC_URL", "DURATASK_TOKEN"):
            del os.environ[key]
        get_settings.cache_clear()


async def test_cli_rate_comment_handoff_and_errors(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with run_stack(dev_env, task_queue, tmp_path, api_keys=KEYS) as s:
        done, open_ = await setup(s)

        async def cli(token: str, *args: str) -> Result:
            return await asyncio.to_thread(_cli, s.url, token, *args)

        r = await cli("k-ana", "run", "rate", done, "up", "--comment", "nice")
        assert r.exit_code == 0 and f"rated {done} up as ana@example.com" in r.output, r.output
        r = await cli("k-bob", "run", "rate", done, "down")
        assert r.exit_code == 0, r.output
        r = await cli("k-ana", "run", "comment", done, "first look")
        assert r.exit_code == 0 and "comment added" in r.output, r.output
        r = await cli("k-bob", "run", "comment", done, "check the prompt", "--note")
        assert r.exit_code == 0 and "note added" in r.output, r.output
        r = await cli("k-ana", "run", "comment", done, "yours", "--handoff-to", "bob")
        assert r.exit_code == 0 and f"handed {done} to bob" in r.output, r.output
        r = await cli("k-rae", "run", "comments", done)
        assert r.exit_code == 0, r.output
        out = r.output
        assert "up 1  down 1" in out and "assigned to bob" in out and "nice" in out
        assert out.index("first look") < out.index("check the prompt") < out.index("yours")
        assert "handoff -> bob" in out
        r = await cli("k-rae", "ratings", "--definition", "quick")
        assert r.exit_code == 0 and "up 1  down 1  (2 ratings)" in r.output, r.output
        r = await cli("k-bob", "handoffs")
        assert r.exit_code == 0 and done in r.output and "yes" in r.output, r.output
        state = (await s.http.get(f"/v1/runs/{done}", headers=RAE)).json()
        assert state["rating_summary"] == {"up": 1, "down": 1} and state["comment_count"] == 3
        r = await cli("k-rae", "run", "show", done)
        assert r.exit_code == 0, r.output
        assert "source: kind=chat, conversation_id=conv-42" in r.output
        assert "up 1 / down 1, 3 comment(s), assigned to bob" in r.output
        r = await cli("k-ana", "run", "start", "quick", "--team", "crew", "--source", "kind=chat",
                      "--source", "conversation_id=c9")  # fmt: skip
        assert r.exit_code == 0, r.output
        started = re.search(r"started (run-\S+)", r.output).group(1)  # type: ignore[union-attr]
        assert (await s.http.get(f"/v1/runs/{started}", headers=RAE)).json()["source"] == {
            "kind": "chat", "conversation_id": "c9",
        }  # fmt: skip

        # 4xx: non-zero exit with the gateway's reason
        r = await cli("k-ana", "run", "rate", open_, "up")
        assert r.exit_code == 2 and "409" in r.output and "is running" in r.output, r.output
        r = await cli("k-rae", "run", "comment", done, "hi")
        assert r.exit_code == 2 and "tasks:write" in r.output, r.output
        r = await cli("k-ana", "run", "comment", "run-nope", "hi")
        assert r.exit_code == 2 and "404" in r.output, r.output
        r = await cli("k-ana", "run", "comment", done, "  ")
        assert r.exit_code == 2 and "must not be empty" in r.output, r.output
        r = await cli("k-ana", "run", "rate", done, "meh")
        assert r.exit_code != 0 and "'up' or 'down'" in r.output, r.output
        await s.http.post(f"/v1/runs/{open_}/cancel", json={}, headers=ANA)
