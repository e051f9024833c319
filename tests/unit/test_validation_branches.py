"""Inline parallel branches: what their templates may read, and branch names."""

from tests.helpers import definition
from workflows.validation import validate


def _parallel(branch_prompt: str, names: tuple[str, str] = ("a", "b")) -> list[dict[str, object]]:
    return [
        {"id": "draft", "action": "llm_call", "prompt": "draft"},
        {
            "id": "fan",
            "action": "parallel",
            "branches": [
                {
                    "name": names[0],
                    "steps": [{"id": "x", "action": "llm_call", "prompt": branch_prompt}],
                },
                {"name": names[1], "task": "other"},
            ],
        },
    ]


def test_inline_branch_may_read_parent_step_outputs() -> None:
    problems = validate(definition(_parallel("Review {{ steps.draft.output }}")))
    assert problems == []


def test_inline_branch_reading_an_unknown_step_is_named() -> None:
    problems = validate(definition(_parallel("Review {{ steps.nope.output }}")))
    assert [p.message for p in problems] == ["template reads unknown step 'nope'"]
    assert problems[0].step_id == "fan/0/x"


def test_duplicate_branch_names_are_rejected() -> None:
    problems = validate(definition(_parallel("ok", names=("same", "same"))))
    assert any("duplicate branch name 'same'" in p.message for p in problems)
