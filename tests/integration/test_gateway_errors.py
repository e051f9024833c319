"""Bad input gets a clear 4xx; an unreachable Temporal gets a 503 naming it."""

from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from duratask.settings import Settings
from tests.stack import Stack, free_port, run_gateway


async def test_unknown_definition_is_404_naming_it(stack: Stack) -> None:
    r = await stack.http.post("/v1/runs", json={"definition_id": "nope", "input": {}})
    assert r.status_code == 404
    assert "nope" in r.json()["detail"]


async def test_malformed_definition_is_422_naming_the_field(stack: Stack) -> None:
    r = await stack.http.put(
        "/v1/definitions/bad", json={"id": "bad", "steps": [{"id": "a", "action": "llm_call"}]}
    )
    assert r.status_code == 422
    assert "prompt" in r.json()["detail"]


async def test_yaml_body_is_accepted(stack: Stack) -> None:
    body = "id: yml\nsteps:\n  - {id: a, action: llm_call, prompt: hi}\n"
    r = await stack.http.put(
        "/v1/definitions/yml", content=body, headers={"content-type": "application/yaml"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["definition"]["steps"][0]["prompt"] == "hi"


async def test_missing_required_input_is_422(stack: Stack) -> None:
    await stack.put_definition(
        {
            "id": "needs",
            "inputs": {"who": {"type": "string", "required": True}},
            "steps": [{"id": "a", "action": "llm_call", "prompt": "{{ input.who }}"}],
        }
    )
    r = await stack.http.post("/v1/runs", json={"definition_id": "needs", "input": {}})
    assert r.status_code == 422
    assert "who" in r.json()["detail"]


async def test_unknown_run_is_404(stack: Stack) -> None:
    r = await stack.http.get("/v1/runs/run-doesnotexist")
    assert r.status_code == 404


async def test_temporal_unreachable_is_503(tmp_path: Path, dev_env: WorkflowEnvironment) -> None:
    settings = Settings(
        temporal_address=f"127.0.0.1:{free_port()}",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db",
        _env_file=None,  # type: ignore[call-arg]
    )
    import httpx

    async with run_gateway(settings) as url, httpx.AsyncClient(base_url=url) as http:
        await http.put(
            "/v1/definitions/h",
            json={
                "id": "h",
                "steps": [{"id": "a", "action": "llm_call", "prompt": "x"}],
            },
        )
        r = await http.post("/v1/runs", json={"definition_id": "h"})
        assert r.status_code == 503
        assert "unreachable" in r.json()["detail"]
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert (await http.get("/healthz")).status_code == 200
