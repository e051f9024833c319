"""The console's run page and `duratask run show` name the model that answered a step
(a fallback) and a call waiting for its endpoint's rate limit, from the run state."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from console.routes import env
from workflows.models import RateLimitWait, RunState, RunStatus, StepModel, StepState


def test_run_page_names_the_fallback_and_the_rate_limit_wait() -> None:
    run = RunState(run_id="run-x", definition_id="d", definition_version=1,
                   status=RunStatus.running, steps=[
        StepState(id="a", action="llm_call", model=StepModel(endpoint="spare", name="small",
                                                             fallback=1)),
        StepState(id="b", action="llm_call", waiting_for_rate_limit=RateLimitWait(
            endpoint="hosted", until=datetime(2026, 1, 1, tzinfo=UTC), wait_s=30,
            reservation=7, limit="requests_per_minute")),
        StepState(id="c", action="llm_call", model=StepModel(endpoint="main", name="big")),
    ])  # fmt: skip
    html = env.get_template("_run_live.html").render(
        run=run, nodes=[], pending=None, live=True, terminal=False, may_change=False,
        run_url=lambda r: f"/ui/runs/{r}", priorities=[], who=None, csrf="x",
    )  # fmt: skip
    assert "answered by fallback spare/small" in html
    assert "waiting for the rate limit of hosted" in html
    assert html.count("answered by fallback") == 1  # not for the step's own model


def test_run_show_names_the_fallback_and_the_rate_limit_wait(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cli.runs import print_state

    run = RunState(run_id="run-x", definition_id="d", definition_version=1, steps=[
        StepState(id="a", action="llm_call", model=StepModel(endpoint="spare", name="small",
                                                             fallback=1)),
        StepState(id="b", action="llm_call", waiting_for_rate_limit=RateLimitWait(
            endpoint="hosted", until=datetime(2026, 1, 1, tzinfo=UTC), wait_s=30,
            reservation=7, limit="tokens_per_minute")),
    ])  # fmt: skip
    print_state(run.model_dump(mode="json"))
    text = capsys.readouterr().out
    assert "'a' was answered by fallback 1: spare/small" in text
    assert "waiting for the rate limit of endpoint 'hosted' (tokens_per_minute)" in text
