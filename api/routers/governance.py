"""`/v1/runs/{id}/budget|input/{step}|rerun`: raise a run's budget, give an `input` step
its value, re-run a run from a step (api/governance_service.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Approver, RunsDep, Writer
from api.errors import COMMON, TEMPORAL, responses
from api.governance_service import GovernanceService
from api.run_ids import child_route
from workflows.models import BudgetState, RunState

router = APIRouter(
    prefix="/v1/runs", tags=["runs"], responses=responses(*COMMON, 404, 409, *TEMPORAL)
)


def get_governance(runs: RunsDep) -> GovernanceService:
    return GovernanceService(runs)


Gov = Annotated[GovernanceService, Depends(get_governance)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RaiseBudgetRequest(_Body):
    max_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, gt=0)
    comment: str | None = Field(default=None, max_length=2000)


class InputRequest(_Body):
    value: Any = None


class RerunRequest(_Body):
    from_step: str = Field(min_length=1, max_length=63)
    definition_version: int | None = Field(default=None, ge=1)
    input: dict[str, Any] | None = None


@router.post("/{run_id}/budget")
async def raise_budget(
    run_id: str, body: RaiseBudgetRequest, gov: Gov, who: Approver
) -> BudgetState:
    """Raise the run's token / cost limits; a run waiting at its budget goes on. Needs
    `tasks:approve` and a run the caller may see; the new limit must be above what the
    run has spent."""
    return await gov.raise_budget(run_id, body.max_tokens, body.max_cost_usd, body.comment)


@router.post("/{run_id}/input/{step_id}")
async def submit_input(
    run_id: str, step_id: str, body: InputRequest, gov: Gov, who: Writer
) -> dict[str, Any]:
    """Give a waiting `input` step its value (the step's JSON Schema decides: 422 names
    each wrong field). Needs `tasks:write` on a run the caller may change."""
    value = await gov.submit_input(run_id, step_id, body.value)
    return {"run_id": run_id, "step_id": step_id, "accepted": True, "value": value}


@router.post(
    "/{run_id}/rerun",
    status_code=status.HTTP_201_CREATED,
)
async def rerun(run_id: str, body: RerunRequest, gov: Gov, who: Writer) -> RunState:
    """Start a new run that reuses the recorded outputs of the steps before `from_step`
    and executes the rest, of the same definition version or `definition_version`."""
    return await gov.rerun(run_id, body.from_step, body.definition_version, body.input)


child_route(router, "/{run_id}/budget", raise_budget, methods=["POST"])
child_route(router, "/{run_id}/input/{step_id}", submit_input, methods=["POST"])
