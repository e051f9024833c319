"""duratask's own worker metrics: runs started and finished, model tokens and cost.

They are observed where they happen (the run's workflow, the model activity) through
the Temporal SDK's metric meter, so they leave the worker on the same Prometheus
endpoint as the SDK's runtime metrics (`DURATASK_WORKER_METRICS_ADDRESS`), and the
workflow meter skips replays: a run that a restarted worker replays is not counted
twice. An interceptor, so neither the workflow nor the providers know about metrics.

Series (docs/observability.md): `duratask_runs_started_total{definition,trigger}`,
`duratask_runs_finished_total{definition,status}`, `duratask_model_tokens_total{
provider,model,kind}` and `duratask_model_cost_usd{provider,model}` (a histogram per
call: its `_sum` is the spend).
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity, workflow
from temporalio.exceptions import CancelledError as TemporalCancelled
from temporalio.exceptions import FailureError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from workflows import contracts
from workflows.models import LlmRequest, LlmResponse, RunInput, RunState

RUNS_STARTED = "duratask_runs_started"
RUNS_FINISHED = "duratask_runs_finished"
MODEL_TOKENS = "duratask_model_tokens"
MODEL_COST = "duratask_model_cost_usd"


def _definition(inp: Any) -> str:
    if not isinstance(inp, RunInput):
        return "unknown"
    if inp.bundle is not None:
        return inp.bundle.root.definition.id
    return inp.definition_id or "unknown"


class _RunMetricsWorkflow(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        inp = input.args[0] if input.args else None
        definition = _definition(inp)
        meter = workflow.metric_meter()
        if workflow.info().continued_run_id is None:  # a continuation is the same run
            trigger = inp.meta.trigger.value if isinstance(inp, RunInput) else "unknown"
            meter.create_counter(RUNS_STARTED, "runs started").add(
                1, {"definition": definition, "trigger": trigger}
            )
        finished = meter.create_counter(RUNS_FINISHED, "runs that ended, by status")
        try:
            result = await super().execute_workflow(input)
        except workflow.ContinueAsNewError:
            raise
        except (asyncio.CancelledError, TemporalCancelled):
            finished.add(1, {"definition": definition, "status": "cancelled"})
            raise
        except FailureError:  # fails the run (other errors retry the workflow task)
            finished.add(1, {"definition": definition, "status": "failed"})
            raise
        status = result.status.value if isinstance(result, RunState) else "completed"
        finished.add(1, {"definition": definition, "status": status})
        return result


class _ModelMetricsActivity(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        result = await super().execute_activity(input)
        if (
            activity.info().activity_type == contracts.LLM_ACTIVITY
            and isinstance(result, LlmResponse)
            and result.rate_limited is None  # told to wait for its slot: no model call made
        ):
            req = input.args[0] if input.args else None
            provider = req.model.provider if isinstance(req, LlmRequest) else "unknown"
            model = result.model or (req.model.name if isinstance(req, LlmRequest) else "")
            labels = {"provider": str(provider or "default"), "model": model or "unknown"}
            meter = activity.metric_meter()
            tokens = meter.create_counter(MODEL_TOKENS, "model tokens", "tokens")
            tokens.add(result.usage.input_tokens, {**labels, "kind": "input"})
            tokens.add(result.usage.output_tokens, {**labels, "kind": "output"})
            meter.create_histogram_float(MODEL_COST, "model cost per call, USD").record(
                result.usage.cost_usd, labels
            )
        return result


class RunMetricsInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ModelMetricsActivity(next)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _RunMetricsWorkflow
