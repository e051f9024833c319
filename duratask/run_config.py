"""`run_config()`: the one place a run's RunConfig is built from the settings.

A RunConfig is fixed when a run starts and travels in its input, so replays and
continue-as-new see the same knobs whichever worker picks the run up. Every way a run
starts (the gateway's `POST /v1/runs`, a retry, a Temporal Schedule firing, a model's
`schedule_task` tool) goes through this function, so a setting added here reaches all
of them; building the config anywhere else is how a scheduled run came to ignore the
agent-loop settings.
"""

from __future__ import annotations

from duratask.settings import Settings
from workflows.definition import ModelSpec
from workflows.models import DailyLimits, RunConfig


def run_config(settings: Settings) -> RunConfig:
    s = settings
    return RunConfig(
        default_model=ModelSpec(
            endpoint=s.model_endpoint, provider=s.model_provider, name=s.model_name
        ),
        max_output_bytes=s.max_output_bytes,
        max_subtask_depth=s.max_subtask_depth,
        continue_as_new_after_turns=s.agent_continue_as_new_after_turns,
        drift_after_turns=s.agent_drift_after_turns,
        max_interruptions=s.step_max_interruptions,
        continue_as_new_history_events=s.run_continue_as_new_history_events,
        continue_as_new_history_bytes=s.run_continue_as_new_history_bytes,
        on_budget=s.budget_on_exceed,
        daily_per_owner=(
            DailyLimits(**s.budget_daily_per_owner.model_dump())
            if s.budget_daily_per_owner
            else None
        ),
        daily_per_definition={
            k: DailyLimits(**v.model_dump()) for k, v in s.budget_daily_per_definition.items()
        },
        tool_policies=list(s.tool_policies),
    )
