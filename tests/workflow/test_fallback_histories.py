"""The saved histories of the fallback and rate-limit paths hold what they are for
(tests/workflow/test_replay.py replays them): the patch markers, the refused model's
failed activity followed by its fallback's, and the durable rate-limit timer."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from workflows.agent import PATCH_FALLBACK, PATCH_RATE_LIMIT_WAIT

HISTORIES = Path(__file__).parent.parent / "histories"


def _types(name: str) -> tuple[list[str], str]:
    """The history's event types, and the patch ids of its markers (decoded)."""
    events = json.loads((HISTORIES / f"{name}.json").read_text())["events"]
    patches = [
        base64.b64decode(p["data"]).decode()
        for e in events
        if "markerRecordedEventAttributes" in e
        for p in e["markerRecordedEventAttributes"]["details"]["patch-data"]["payloads"]
    ]
    return [e["eventType"].removeprefix("EVENT_TYPE_") for e in events], " ".join(patches)


def test_fallback_history_fails_over_to_the_next_model() -> None:
    types, text = _types("model_fallback")
    assert PATCH_FALLBACK in text
    llm = [t for t in types if t.startswith("ACTIVITY_TASK_") and t != "ACTIVITY_TASK_STARTED"]
    assert llm == ["ACTIVITY_TASK_SCHEDULED", "ACTIVITY_TASK_FAILED",
                   "ACTIVITY_TASK_SCHEDULED", "ACTIVITY_TASK_COMPLETED"]  # fmt: skip
    assert types[-1] == "WORKFLOW_EXECUTION_COMPLETED"


def test_rate_limit_history_waits_with_a_timer() -> None:
    types, text = _types("rate_limit_wait")
    assert PATCH_RATE_LIMIT_WAIT in text
    assert types.count("TIMER_STARTED") == 1 and types.count("TIMER_FIRED") == 1
    assert types.count("ACTIVITY_TASK_COMPLETED") == 3  # a, b told to wait, b after the wait
    assert types[-1] == "WORKFLOW_EXECUTION_COMPLETED"
