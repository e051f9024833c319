"""The offline `scripted` model: echo, and a script that wins over an inherited name."""

from __future__ import annotations

from activities.llm.scripted import ScriptedProvider
from workflows.definition import ModelSpec
from workflows.models import ChatMessage, LlmRequest


def request(model: ModelSpec) -> LlmRequest:
    return LlmRequest(
        run_id="r", step_id="s", model=model, messages=[ChatMessage(role="user", content="hi")]
    )


async def test_echo_answers_with_the_prompt() -> None:
    res = await ScriptedProvider().complete(request(ModelSpec(provider="scripted", name="echo")))
    assert res.text == "hi" and res.model == "scripted/echo"


async def test_a_step_script_plays_even_over_an_inherited_echo_name() -> None:
    base = ModelSpec(provider="scripted", name="echo")
    step = ModelSpec.model_validate({"script": [{"text": "from the script"}]})
    res = await ScriptedProvider().complete(request(step.merged_over(base)))
    assert res.text == "from the script"
