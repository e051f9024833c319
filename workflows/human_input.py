"""`input` steps: the run asks a person for a value and goes on with it.

The step parks the run (status `awaiting_input`, the schema in `pending_inputs`) until a
`submit_input` Update brings a value its JSON Schema accepts. Validation happens in the
Update's validator, inside the workflow, so a wrong value is refused before it is ever
written to history and the caller learns which field is wrong from the workflow's own
answer; the gateway only checks who may submit. Top-level `default`s of an object schema
fill missing properties before validating. The value becomes the step's output.

Who is asked: the run's owner and its team (those who may submit). The request is sent
to them like an approval (docs/approvals.md#delivery), through the notify activity; a
failed delivery is an `input.notify_failed` event and never fails the step.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator
from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows import contracts
from workflows.durations import parse_duration
from workflows.errors import fail
from workflows.events import EventType
from workflows.models import Delivery, InputSubmission, NotifyRequest, RunStatus
from workflows.notifications import notify_people
from workflows.templates import render_text

if TYPE_CHECKING:
    from workflows.definition import InputStep
    from workflows.host import RunHost

MAX_PROBLEMS = 20
PATCH_DELIVERY = "input-delivery"  # an input step sends its request (notify activity)


def with_defaults(schema: dict[str, Any], value: Any) -> Any:
    """`value` with the top-level defaults of an object schema filled in."""
    props = schema.get("properties")
    if not isinstance(value, dict) or not isinstance(props, dict):
        return value
    out = dict(value)
    for name, spec in props.items():
        if name not in out and isinstance(spec, dict) and "default" in spec:
            out[name] = copy.deepcopy(spec["default"])
    return out


def problems(schema: dict[str, Any], value: Any) -> list[dict[str, str]]:
    """Every way `value` breaks `schema`, each naming its field (a JSON path; `required`
    errors name the missing property)."""
    found: list[dict[str, str]] = []
    for err in sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path)):
        path = ".".join(str(p) for p in err.absolute_path)
        if err.validator == "required" and isinstance(err.validator_value, list):
            missing = [p for p in err.validator_value if isinstance(err.instance, dict)
                       and p not in err.instance]  # fmt: skip
            for name in missing:
                found.append({"field": f"{path}.{name}" if path else name,
                              "message": f"'{name}' is required"})  # fmt: skip
            continue
        found.append({"field": path or "value", "message": err.message})
        if len(found) >= MAX_PROBLEMS:
            break
    return found


class HumanInput:
    def __init__(self, wf: RunHost) -> None:
        self.wf = wf
        self.values: dict[str, Any] = {}

    async def run(self, step: InputStep) -> tuple[Any, bool, str | None]:
        t = self.wf.tracker
        prompt = render_text(step.prompt, self.wf.namespace()) if step.prompt else None
        now = workflow.now()
        t.state.pending_inputs[step.id] = {"schema": step.schema_, "prompt": prompt,
                                           "requested_at": now.isoformat()}  # fmt: skip
        t.set_status(RunStatus.awaiting_input)
        t.emit(EventType.AWAITING_INPUT, step.id, prompt or f"{step.title}: waiting for input")
        timeout = parse_duration(step.timeout) if step.timeout is not None else None
        try:
            if workflow.patched(PATCH_DELIVERY):
                await self._notify(step, prompt, now, timeout)
                if timeout is not None:  # the delivery's time counts against the wait
                    timeout -= workflow.now() - now
                if step.id not in self.values:
                    if timeout is not None and timeout <= timedelta(0):
                        raise TimeoutError
                    await workflow.wait_condition(lambda: step.id in self.values, timeout=timeout)
            else:
                await workflow.wait_condition(lambda: step.id in self.values, timeout=timeout)
        except TimeoutError:
            raise fail(
                contracts.E_TIMEOUT, f"no input for step '{step.id}' within {step.timeout}"
            ) from None
        finally:
            t.state.pending_inputs.pop(step.id, None)
        t.set_status(RunStatus.running)
        return self.values.pop(step.id), False, None

    async def _notify(
        self, step: InputStep, prompt: str | None, now: datetime, timeout: timedelta | None
    ) -> None:
        """Send the request to the run's owner and team (log, webhook, e-mail with links)."""
        st = self.wf.tracker.state
        people = [p for p in (st.owner, f"group:{st.team}" if st.team else None) if p]
        req = NotifyRequest(
            run_id=st.run_id,
            step_id=step.id,
            message=f"Input requested for run {st.run_id}, step '{step.title}'"
            + (f": {prompt}" if prompt else ""),
            channel="inputs",
            data={
                "kind": "input_requested",
                "step_id": step.id,
                "prompt": prompt,
                "schema": step.schema_,
                "requested_at": now.isoformat(),
            },
            idempotency_key=self.wf.idempotency_key(step.id, "input-requested"),
            delivery=Delivery(
                kind="input",
                visit=now.isoformat(),
                recipients=people,
                deadline=now + timeout if timeout is not None else None,
                prompt=prompt,
            ),
        )
        why = await notify_people(self.wf, req, summary=f"{step.id}: input requested")
        if why is not None:
            msg = f"could not deliver the request: {why}"
            self.wf.tracker.emit(EventType.INPUT_NOTIFY_FAILED, step.id, msg)

    # ------------------------------------------------------------ the Update
    def validate(self, req: InputSubmission) -> None:
        pending = self.wf.tracker.state.pending_inputs.get(req.step_id)
        if pending is None:
            raise ApplicationError(
                f"step '{req.step_id}' is not waiting for input",
                {"problems": []},
                type="NOT_WAITING",
                non_retryable=True,
            )
        schema = pending["schema"]
        found = problems(schema, with_defaults(schema, req.value))
        if found:
            summary = "; ".join(f"{p['field']}: {p['message']}" for p in found[:5])
            raise ApplicationError(
                f"invalid input for step '{req.step_id}': {summary}",
                {"problems": found},
                type=contracts.E_INVALID_INPUT,
                non_retryable=True,
            )

    def submit(self, req: InputSubmission) -> Any:
        pending = self.wf.tracker.state.pending_inputs[req.step_id]
        value = with_defaults(pending["schema"], req.value)
        self.values[req.step_id] = value
        self.wf.tracker.emit(EventType.INPUT_RECEIVED, req.step_id, f"input from {req.by}",
                             by=req.by)  # fmt: skip
        return value
