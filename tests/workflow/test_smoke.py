from temporalio.client import Client

from tests.helpers import definition, make_worker, run_input, start
from workflows.models import RunState


async def test_echo_run_completes(ts_client: Client, task_queue: str) -> None:
    defn = definition(
        [
            {"id": "greet", "action": "llm_call", "prompt": "Hello {{ input.name }}"},
            {"id": "shout", "action": "llm_call", "prompt": "{{ steps.greet.output | upper }}"},
        ],
        inputs={"name": {"type": "string", "required": True}},
    )
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(defn, {"name": "Ada"}))
        state: RunState = await handle.result()
    assert state.status == "completed"
    assert state.step("greet").output == "Hello Ada"
    assert state.result == "HELLO ADA"
    assert state.progress.percent == 100
    assert [e.type for e in state.events][:3] == ["run.created", "run.queued", "run.started"]
