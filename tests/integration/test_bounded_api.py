"""Bounded inputs and the API contract against the real gateway (issue 13 item 3,
issue 17 item 2): each finding gets a 4xx naming the problem, never a 5xx, and the
gateway stays responsive while a definition validates."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

import api.routers.definitions as definitions_router
from tests.helpers import eventually
from tests.integration.test_auth import JWT_SETTINGS, bearer, token
from tests.stack import Stack, run_stack
from workflows.validation import validate

BIG = str(2**70)


def notify_steps(n: int) -> list[dict[str, Any]]:
    return [{"id": f"s{i}", "action": "notify", "message": "x"} for i in range(n)]


def assert_error(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text[:300])
    body = r.json()
    assert isinstance(body["detail"], str) and body["detail"], body
    for w in words:
        assert w in body["detail"], (w, body["detail"])


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/runs", {"page_token": "abc"}),
        ("/v1/runs", {"page_token": "null"}),
        ("/v1/approvals", {"page_token": "abc"}),
        ("/v1/approvals", {"page_token": "null"}),
        ("/v1/definitions", {"offset": BIG}),
        ("/v1/ratings", {"offset": BIG}),
        ("/v1/definitions/x/versions/" + BIG, {}),
        ("/v1/runs", {"definition_id": "a\x00b"}),
        ("/v1/runs", {"owner": "a\x00b"}),
        ("/v1/approvals", {"approver": "a\x00b"}),
        ("/v1/handoffs", {"page_token": "\u00b2"}),  # '²'.isdigit(), int('²') fails: was 500
        ("/v1/handoffs", {"page_token": BIG}),
    ],
)
async def test_malformed_queries_are_422(stack: Stack, path: str, params: dict[str, str]) -> None:
    r = await stack.http.get(path, params=params)
    assert_error(r, 422)
    name = next(iter(params), "version")
    assert name in r.text or "NUL" in r.text, r.text


async def test_a_page_token_round_trips(stack: Stack) -> None:
    def_id = stack.task_queue  # unique: the namespace holds other tests' runs
    await stack.put_definition({"id": def_id, "steps": notify_steps(1)})
    started = [(await stack.start(def_id))["run_id"] for _ in range(3)]
    for run_id in started:  # finished runs keep their place in the listing
        await stack.wait_result(run_id)

    async def page_through() -> list[str] | None:
        seen: list[str] = []
        token_: str | None = None
        for _ in range(10):
            params: dict[str, Any] = {"definition_id": def_id, "page_size": 1}
            if token_:
                params["page_token"] = token_
            r = await stack.http.get("/v1/runs", params=params)
            assert r.status_code == 200, r.text
            seen += [i["run_id"] for i in r.json()["items"]]
            token_ = r.json()["next_page_token"]
            if not token_:
                break
        return seen if sorted(seen) == sorted(started) else None  # visibility may lag

    assert await eventually(page_through, timeout=30)


async def test_version_past_64_bits_in_a_start_is_422(stack: Stack) -> None:
    r = await stack.http.post("/v1/runs", json={"definition_id": "x", "version": 2**70})
    assert_error(r, 422, "version")


@pytest.mark.parametrize("value", ["99999999999w", 1e300])
async def test_a_duration_past_the_limit_is_422(stack: Stack, value: object) -> None:
    body = {"id": "w", "steps": [{"id": "a", "action": "wait", "duration": value}]}
    r = await stack.http.put("/v1/definitions/w", json=body)
    assert_error(r, 422, "10000 years")


async def test_deeply_nested_bodies_are_4xx(stack: Stack) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    r = await stack.http.post(
        "/v1/definitions/validate", content=deep, headers={"content-type": "application/json"}
    )
    assert_error(r, 422, "nested")
    r = await stack.http.post(
        "/v1/definitions/validate",
        content="a: " + "[" * 50_000,
        headers={"content-type": "text/yaml"},
    )
    assert_error(r, 422, "nested")
    await stack.put_definition({"id": "greet", "steps": notify_steps(1)})
    for depth in (300, 900):  # past pydantic's serialization depth: not encodable
        nested = '{"definition_id": "greet", "input": {"a": ' + "[" * depth + "]" * depth + "}}"
        r = await stack.http.post(
            "/v1/runs", content=nested, headers={"content-type": "application/json"}
        )
        assert_error(r, 422, "cannot be encoded")
    nested = '{"definition_id": "greet", "input": {"a": ' + "[" * 50_000 + "]" * 50_000 + "}}"
    r = await stack.http.post(
        "/v1/runs", content=nested, headers={"content-type": "application/json"}
    )
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])


async def test_body_over_the_limit_is_413_even_when_chunked(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with run_stack(dev_env, task_queue, tmp_path, worker=False, max_body_bytes=10_000) as s:
        big = json.dumps({"id": "big", "steps": notify_steps(1), "description": "x" * 20_000})
        r = await s.http.put("/v1/definitions/big", content=big)
        assert_error(r, 413, "10,000 bytes")

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked encoding
            for i in range(0, len(big), 1000):
                yield big[i : i + 1000].encode()

        r = await s.http.put("/v1/definitions/big", content=chunks())
        assert "content-length" not in r.request.headers
        assert_error(r, 413, "10,000 bytes")
        for path in ("/v1/runs", "/v1/schedules", "/v1/runs/x/comments"):  # every route
            r = await s.http.post(path, content=big, headers={"content-type": "application/json"})
            assert_error(r, 413, "10,000 bytes")
        assert (await s.http.get("/v1/definitions/big")).status_code == 404


async def test_a_run_input_over_the_payload_limit_is_413(stack: Stack) -> None:
    await stack.put_definition({"id": "greet", "steps": notify_steps(1)})
    r = await stack.http.post(
        "/v1/runs", json={"definition_id": "greet", "input": {"blob": "x" * 3_000_000}}
    )
    assert_error(r, 413, "payload limit of 2,097,152 bytes")


async def test_definition_limits_are_checked_before_validation(stack: Stack) -> None:
    started = time.monotonic()
    r = await stack.http.put(
        "/v1/definitions/many", json={"id": "many", "steps": notify_steps(20_000)}
    )
    assert_error(r, 422, "more than 1,000 steps")
    r = await stack.http.put(
        "/v1/definitions/braces",
        json={
            "id": "braces",
            "steps": [{"id": "a", "action": "llm_call", "prompt": "{{" * 48_000}],
        },
    )
    assert_error(r, 422, "prompt is longer than the limit")
    bomb = "id: bomb\nsteps: [{id: a, action: notify, message: x}]\n" + "\n".join(
        ['a: &a ["x","x","x","x","x","x","x","x","x"]']
        + [
            f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]"
            for i in range(8)
        ]
    )
    r = await stack.http.put(
        "/v1/definitions/bomb", content=bomb, headers={"content-type": "application/yaml"}
    )
    assert_error(r, 422, "aliases")
    # each took seconds to minutes before; generous for a loaded machine
    assert time.monotonic() - started < 30


async def test_a_large_legal_definition_validates(stack: Stack) -> None:
    steps = notify_steps(1000)
    steps[-1]["next"] = "s0"  # a loop with no exit: found without recursion
    r = await stack.http.post("/v1/definitions/validate", json={"id": "loop", "steps": steps})
    assert_error(r, 422, "loop forever")


async def test_healthz_answers_while_a_definition_validates(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validation runs in a worker thread: while it is busy, the event loop still serves.
    The validator here holds until /healthz has answered; on the event loop it would hold
    the loop, /healthz could not answer and the wait below would time out."""
    answered = threading.Event()
    entered = threading.Event()

    def held_validate(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        answered.wait(30)
        return validate(*args, **kwargs)

    monkeypatch.setattr(definitions_router, "validate", held_validate)
    body = {"id": "held", "steps": notify_steps(3)}
    put = asyncio.create_task(stack.http.post("/v1/definitions/validate", json=body))
    assert await asyncio.to_thread(entered.wait, 30)  # the validator is running
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as other:
        r = await other.get("/healthz")
    assert r.status_code == 200
    assert not put.done()
    answered.set()
    assert (await put).status_code == 200


async def test_jwt_claims_of_the_wrong_type_are_401(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with run_stack(dev_env, task_queue, tmp_path, worker=False, **JWT_SETTINGS) as s:
        for claims in ({"scope": 5}, {"scopes": {"a": 1}}, {"groups": 7}, {"sub": 12}):
            r = await s.http.get("/v1/definitions", headers=bearer(token(**claims)))
            assert_error(r, 401, "invalid token")
        r = await s.http.get("/v1/definitions", headers=bearer(token(scope="tasks:read")))
        assert r.status_code == 200


async def test_every_error_is_declared_with_the_error_body(stack: Stack) -> None:
    spec = (await stack.http.get("/openapi.json")).json()
    error_ref = "#/components/schemas/ErrorBody"
    assert spec["components"]["schemas"]["ErrorBody"]["properties"]["detail"]["type"] == "string"
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if path in ("/healthz", "/readyz"):
                continue
            for code in ("401", "403", "413", "422"):
                schema = op["responses"][code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": error_ref}, (method, path, code)
    r = await stack.http.put("/v1/definitions/bad", json={"id": "bad", "steps": [{"id": "a"}]})
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], str) and isinstance(r.json()["problems"], list)


@pytest.mark.parametrize(
    ("every", "since", "words"),
    [("1s", datetime(1990, 1, 1, tzinfo=UTC), "366d"), ("1s", None, "1,000 runs")],
)
async def test_backfill_is_bounded(
    stack: Stack, every: str, since: datetime | None, words: str
) -> None:
    await stack.put_definition({"id": "greet", "steps": notify_steps(1)})
    r = await stack.http.post(
        "/v1/schedules", json={"definition_id": "greet", "every": every, "id": stack.task_queue}
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    end = datetime.now(UTC) - timedelta(minutes=1)
    start = since or end - timedelta(hours=1)  # 3,600 runs at one a second
    body = {"start_at": start.isoformat(), "end_at": end.isoformat()}
    r = await stack.http.post(f"/v1/schedules/{sid}/backfill", json=body)
    assert_error(r, 422, words)
    assert (await stack.http.delete(f"/v1/schedules/{sid}")).status_code == 204


async def test_alternative_success_statuses_are_declared(stack: Stack) -> None:
    """What a route answers besides its main status is in the OpenAPI document too."""
    spec = (await stack.http.get("/openapi.json")).json()["paths"]
    body = {"id": "twice", "steps": notify_steps(1)}
    assert (await stack.http.put("/v1/definitions/twice", json=body)).status_code == 201
    r = await stack.http.put("/v1/definitions/twice", json=body)
    assert (
        r.status_code == 200
        and "200" in spec["/v1/definitions/{definition_id}"]["put"]["responses"]
    )
    start = {"definition_id": "twice", "idempotency_key": stack.task_queue}
    first = await stack.http.post("/v1/runs", json=start)
    again = await stack.http.post("/v1/runs", json=start)
    assert (first.status_code, again.status_code) == (201, 200)
    assert "200" in spec["/v1/runs"]["post"]["responses"]
    assert "202" in spec["/v1/runs/{run_id}/result"]["get"]["responses"]
    assert "201" in spec["/v1/runs/{run_id}/rating"]["put"]["responses"]
