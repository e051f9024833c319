"""`duratask run input|budget|rerun` and `duratask def promote`: govern a run after it
started (docs/runs.md, docs/models-and-tools.md#budgets)."""

from __future__ import annotations

import json
from typing import Any

import typer

from cli.client import Gateway, parse_json
from cli.output import console

out = console()


def submit_input(
    run_id: str,
    step_id: str,
    value: str = typer.Option(..., "--value", "-v", help="the value, as JSON"),
) -> None:
    """Give a waiting `input` step its value (checked against the step's JSON Schema)."""
    res = Gateway().post(
        f"/v1/runs/{run_id}/input/{step_id}", json={"value": parse_json(value, "--value")}
    )
    out.print(f"input accepted for {run_id} step {step_id}: {json.dumps(res['value'])}")


def raise_budget(
    run_id: str,
    max_tokens: int | None = typer.Option(None, "--max-tokens"),
    max_cost_usd: float | None = typer.Option(None, "--max-cost-usd"),
    comment: str | None = typer.Option(None, "--comment", "-c"),
) -> None:
    """Raise a run's token / cost limits (needs tasks:approve); a waiting run goes on."""
    body = {"max_tokens": max_tokens, "max_cost_usd": max_cost_usd, "comment": comment}
    res = Gateway().post(f"/v1/runs/{run_id}/budget", json=body)
    out.print(
        f"budget of {run_id}: max_tokens={res.get('max_tokens')} "
        f"max_cost_usd={res.get('max_cost_usd')}"
    )


def rerun(
    run_id: str,
    from_step: str = typer.Option(..., "--from", help="the first step to execute again"),
    version: int | None = typer.Option(None, "--version", help="definition version to use"),
    input: str | None = typer.Option(None, "--input", help="a new input, as a JSON object"),
) -> None:
    """Start a new run reusing this run's outputs of the steps before --from."""
    body: dict[str, Any] = {"from_step": from_step, "definition_version": version}
    if input is not None:
        body["input"] = parse_json(input, "--input")
    state = Gateway().post(f"/v1/runs/{run_id}/rerun", json=body)
    reused = [s["id"] for s in state.get("steps", []) if s.get("reused")]
    out.print(
        f"re-run as [bold]{state['run_id']}[/bold] from step {from_step}"
        + (f" (reusing {', '.join(reused)})" if reused else "")
    )


def promote(definition_id: str, version: int) -> None:
    """Make an old version the latest (its content becomes a new version)."""
    res = Gateway().post(f"/v1/definitions/{definition_id}/versions/{version}/promote")
    out.print(f"{definition_id}: v{version} promoted as v{res['version']}")
