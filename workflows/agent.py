"""The agent loop of an `llm_call` step, and the interventions that steer it.

One turn: call the model; if it asks for tools, run them (in parallel, each its own
activity) and call the model again with their results; stop when it answers with no
tool calls or `max_steps` model calls have been made. Interventions arrive as the
`intervene` signal:

- `steer` cancels the in-flight model call and restarts it with the message added;
- `collect` buffers messages and merges them into one follow-up turn afterwards;
- `followup` queues a new turn per message after the current one.

The loop also keeps the model's own plan in the run state, but only an explicit one
(the `plan` tool, or a `plan` list in the JSON reply of a step with `output: json`):
prose that happens to hold a numbered list is an answer, not a plan. It raises a drift
alert with a reminder when turns pass without a plan step done, mirrors a bounded view
of the conversation into the step state, and continues-as-new before the history grows
large, carrying the whole conversation and the intervention buffers into the next
execution. A run cancelled while a model call is in flight cancels that call's
activity at once (it would otherwise learn of it only from a failed heartbeat).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from temporalio import workflow

from workflows import contracts
from workflows.definition import LlmCallStep, ModelSpec, resolve_model
from workflows.durations import parse_duration
from workflows.errors import StepFailure, fail
from workflows.events import EventType
from workflows.mcp_tools import McpToolSpec, tool_allowed
from workflows.mcp_tools import servers as mcp_servers
from workflows.models import (
    AgentCarry,
    AgentPlanItem,
    ChatMessage,
    Intervention,
    LlmRequest,
    LlmResponse,
    RunError,
    StepModel,
    ToolCall,
    ToolResult,
)
from workflows.templates import render_text
from workflows.tracker import clip

if TYPE_CHECKING:
    from workflows.host import RunHost

PLAN_TOOL = "plan"
# The fallback chain and the rate-limit wait (docs/models-and-tools.md): new commands
# only on runs whose model has fallbacks / whose endpoint has limits.
PATCH_FALLBACK = "model-fallback"
PATCH_RATE_LIMIT_WAIT = "model-rate-limit-wait"
FALLBACK_AFTER = 2  # attempts a model with a fallback gets, unless `fallback_after` says
DEFAULT_FALLBACK_WAIT = "30s"  # a longer Retry-After moves to the fallback at once
# Runs started before the run's cancel reached the model call replay without it.
PATCH_CANCEL_MODEL_CALL = "agent-cancel-model-call"


class AgentLoop:
    def __init__(self, wf: RunHost) -> None:
        self.wf = wf
        carry = wf.inp.carry.agent if wf.inp.carry else None
        self.carry: AgentCarry | None = carry
        self.steers: list[Intervention] = list(carry.steers) if carry else []
        self.collected: list[Intervention] = list(carry.collected) if carry else []
        self.followups: list[Intervention] = list(carry.followups) if carry else []
        self.turns_since_progress = carry.turns_since_progress if carry else 0
        self.conversations: dict[str, list[ChatMessage]] = {}
        self._calls_at_start = 0
        self.mcp: list[McpToolSpec] = []  # the pinned MCP tools this step offers

    # ------------------------------------------------------------ signals
    def intervene(self, msg: Intervention) -> None:
        self.wf.tracker.emit(
            EventType.INTERVENTION,
            self.wf.tracker.state.current_step,
            msg.message[:200],
            mode=msg.mode,
            sender=msg.sender,
        )
        {"steer": self.steers, "collect": self.collected, "followup": self.followups}[
            msg.mode
        ].append(msg)

    # ------------------------------------------------------------ the step
    def model_for(self, step: LlmCallStep) -> ModelSpec:
        """Endpoint defaults -> definition -> step -> run override, field by field."""
        cfg = self.wf.inp.config
        return resolve_model(
            cfg.default_model, self.wf.definition.model, step.model, cfg.model_override
        )

    async def run(self, step: LlmCallStep) -> tuple[Any, bool]:
        carried = self.carry if self.carry and self.carry.step_id == step.id else None
        self.carry = None
        if carried:
            messages = list(carried.messages)
            calls = carried.calls
        else:
            ns = self.wf.namespace()
            messages = []
            if step.system:
                messages.append(ChatMessage(role="system", content=render_text(step.system, ns)))
            messages.append(ChatMessage(role="user", content=render_text(step.prompt, ns)))
            calls = 0
            self.turns_since_progress = 0
        self._calls_at_start = calls
        self.conversations[step.id] = messages
        self._publish(step, messages, calls)
        tools = self.wf.definition.tools if step.tools is None else step.tools
        limit = step.max_steps or self.wf.definition.limits.max_steps
        model = self.model_for(step)
        self.mcp = await self.wf.pin_mcp_tools(step, tools) if mcp_servers(tools) else []
        while True:
            response, calls = await self._turn(step, model, messages, tools, calls, limit)
            extra = self._next_turn_message()
            if extra is None:
                return self._output(step, response)
            messages.append(ChatMessage(role="user", content=extra))
            self._publish(step, messages, calls)
            self.wf.tracker.emit(EventType.AGENT_NEW_TURN, step.id, extra[:200], model_calls=calls)

    def _next_turn_message(self) -> str | None:
        if self.steers:  # arrived as the turn finished: too late to steer it, so a new turn
            merged = "\n\n".join(m.message for m in self.steers)
            self.steers.clear()
            return merged
        if self.collected:
            merged = "\n\n".join(m.message for m in self.collected)
            self.collected.clear()
            return merged
        if self.followups:
            return self.followups.pop(0).message
        return None

    def _output(self, step: LlmCallStep, response: LlmResponse) -> tuple[Any, bool]:
        text = response.text or ""
        if step.output == "json":
            try:
                return json.loads(text), response.truncated
            except json.JSONDecodeError as e:
                raise fail(
                    "INVALID_JSON_OUTPUT", f"the model's reply is not JSON: {e}", step.id
                ) from None
        return text, response.truncated

    async def _turn(
        self,
        step: LlmCallStep,
        model: ModelSpec,
        messages: list[ChatMessage],
        tools: list[str],
        calls: int,
        limit: int,
    ) -> tuple[LlmResponse, int]:
        """Model and tool calls until the model answers without tools."""
        last: LlmResponse | None = None
        while True:
            if calls >= limit:
                if step.on_max_steps == "last_answer" and last is not None:
                    return last, calls
                raise fail(
                    contracts.E_MAX_STEPS,
                    f"the agent made {calls} model calls without finishing (max_steps={limit})",
                    step.id,
                )
            await self._maybe_continue_as_new(step, messages, calls)
            calls += 1
            last = await self._call_model(step, model, messages, tools, calls)
            messages.append(
                ChatMessage(role="assistant", content=last.text, tool_calls=last.tool_calls)
            )
            self.turns_since_progress += 1
            if last.text:
                self._plan_from_reply(step, last.text, calls)
            self._publish(step, messages, calls)
            if not last.tool_calls:
                return last, calls
            results = await asyncio.gather(
                *(self._call_tool(step, call, calls, tools) for call in last.tool_calls)
            )
            for call, result in zip(last.tool_calls, results, strict=True):
                messages.append(
                    ChatMessage(
                        role="tool",
                        tool_call_id=call.id,
                        name=call.name,
                        content=_tool_content(result),
                    )
                )
            self._publish(step, messages, calls)

    async def _call_model(
        self,
        step: LlmCallStep,
        model: ModelSpec,
        messages: list[ChatMessage],
        tools: list[str],
        turn: int,
    ) -> LlmResponse:
        tracker = self.wf.tracker
        steered = 0
        while True:
            self._apply_steers(messages)
            self._check_drift(step, messages)
            self._publish(step, messages, turn - 1)
            req = LlmRequest(
                run_id=tracker.state.run_id,
                step_id=step.id,
                model=model,
                messages=messages,
                tools=tools,
                turn=turn,
                max_output_bytes=self.wf.inp.config.max_output_bytes,
                steers=steered,
                tool_specs=self.mcp,
            )
            task = asyncio.ensure_future(self._answer(step, model, req))
            try:
                await workflow.wait_condition(lambda t=task: t.done() or bool(self.steers))  # type: ignore[misc]
            except asyncio.CancelledError:
                if workflow.patched(PATCH_CANCEL_MODEL_CALL):
                    await _cancel_and_wait(task)  # the run is cancelled: stop the call now
                raise
            if task.done():
                response: LlmResponse = task.result()
                break
            task.cancel()  # steer: stop the in-flight call, then restart with the message
            try:
                await task
            except (asyncio.CancelledError, StepFailure):
                pass  # the cancelled call's outcome, whatever it was, is discarded
            steered += 1
            tracker.emit(EventType.LLM_STEERED, step.id, "model call cancelled by steer", turn=turn)
        tracker.step(step.id).usage.add(response.usage)
        tracker.state.usage.add(response.usage)
        answered = tracker.step(step.id).model
        tracker.emit(
            EventType.LLM_COMPLETED,
            step.id,
            None,
            turn=turn,
            tool_calls=len(response.tool_calls),
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            cost_usd=response.usage.cost_usd,
            usage_estimated=response.usage.estimated,
            endpoint=answered.endpoint if answered else None,
            model=answered.name if answered else None,
            fallback=answered.fallback if answered else 0,
        )
        await self.wf.budget.after_model_call(step)  # limits (workflows/budget.py)
        return response

    async def _answer(self, step: LlmCallStep, model: ModelSpec, req: LlmRequest) -> LlmResponse:
        """One model call down the model's fallback chain: each model but the last gets
        `fallback_after` attempts (a Retry-After over `fallback_wait` ends them at once);
        a transient failure of one (429, 5xx, connection, timeout) moves to the next."""
        chain = model.chain()
        for index, spec in enumerate(chain):
            last = index == len(chain) - 1
            given = spec.fallback_wait
            wait = parse_duration(given if given is not None else DEFAULT_FALLBACK_WAIT)
            call = req.model_copy(update={
                "model": spec,
                "fallback_wait_s": None if last else wait.total_seconds(),
            })  # fmt: skip
            where = _model_label(spec)
            summary = f"{step.id}: {spec.provider}/{spec.name} turn {req.turn}"
            if index:
                summary = f"{step.id}: {where} turn {req.turn} (fallback {index})"
            try:
                response = await self._call_limited(
                    step, call, summary, None if last else spec.fallback_after or FALLBACK_AFTER
                )
            except StepFailure as failure:
                if last or not _transient(failure.error) or not workflow.patched(PATCH_FALLBACK):
                    raise
                following = chain[index + 1]
                self.wf.tracker.emit(
                    EventType.LLM_FALLBACK,
                    step.id,
                    f"{where} failed ({failure.error.code}): trying {_model_label(following)}",
                    turn=req.turn,
                    fallback=index + 1,
                    code=failure.error.code,
                    failed=where,
                    next=_model_label(following),
                )
                continue
            self.wf.tracker.step(step.id).model = StepModel(
                endpoint=response.endpoint or spec.endpoint,
                provider=spec.provider,
                name=spec.name or response.model,
                fallback=index,
            )
            return response
        raise AssertionError("a model chain is never empty")  # pragma: no cover

    async def _call_limited(
        self, step: LlmCallStep, req: LlmRequest, summary: str, max_attempts: int | None
    ) -> LlmResponse:
        """The model activity, and a durable wait for each rate-limit slot it hands back
        (no retry attempt is used while waiting; the step shows what it waits for)."""
        state = self.wf.tracker.step(step.id)
        while True:
            response: LlmResponse = await self.wf.activity(
                contracts.LLM_ACTIVITY, req, LlmResponse, step, summary, max_attempts
            )
            wait = response.rate_limited
            if wait is None or not workflow.patched(PATCH_RATE_LIMIT_WAIT):
                return response
            state.waiting_for_rate_limit = wait
            self.wf.tracker.emit(
                EventType.LLM_RATE_LIMITED,
                step.id,
                f"waiting for endpoint '{wait.endpoint}' ({wait.limit}) until {wait.until.isoformat()}",
                turn=req.turn,
                endpoint=wait.endpoint,
                until=wait.until.isoformat(),
                wait_s=wait.wait_s,
                limit=wait.limit,
            )
            delay = wait.until - workflow.now()
            try:
                if delay.total_seconds() > 0:
                    await workflow.sleep(delay, summary=f"rate limit of endpoint '{wait.endpoint}'")
            finally:
                state.waiting_for_rate_limit = None
            req = req.model_copy(update={"reservation": wait.reservation})

    def _apply_steers(self, messages: list[ChatMessage]) -> None:
        while self.steers:
            messages.append(ChatMessage(role="user", content=self.steers.pop(0).message))

    async def _call_tool(
        self, step: LlmCallStep, call: ToolCall, turn: int, allowed: list[str]
    ) -> ToolResult:
        name = next((t.name for t in self.mcp if call.name == t.model_name), call.name)
        if not tool_allowed(name, allowed):
            msg = f"tool '{call.name}' is not allowed for this step (allowed: {', '.join(allowed)})"
            self.wf.tracker.emit(EventType.TOOL_COMPLETED, step.id, msg, tool=call.name, error=True)
            return ToolResult(error=msg)
        if call.name == PLAN_TOOL:
            return self._plan_tool(step, call, turn)
        return await self.wf.call_tool(step, name, call.arguments, call_id=f"{turn}-{call.id}")

    # ------------------------------------------------------------ plan tracking
    def _plan_tool(self, step: LlmCallStep, call: ToolCall, turn: int) -> ToolResult:
        """`plan(items=[...], done=[numbers])`: kept in the workflow, no activity needed."""
        items = call.arguments.get("items")
        done = call.arguments.get("done") or []
        if items is not None and not (
            isinstance(items, list) and all(isinstance(i, str) for i in items)
        ):
            return ToolResult(error="plan: 'items' must be a list of strings")
        if not isinstance(done, list) or not all(isinstance(n, int) for n in done):
            return ToolResult(error="plan: 'done' must be a list of step numbers")
        new = (
            [AgentPlanItem(number=i + 1, text=t, step_id=step.id) for i, t in enumerate(items)]
            if items is not None
            else None
        )
        self._update_plan(step, new, set(done), turn)
        return ToolResult(output={"plan": self._plan_text()})

    def _plan_from_reply(self, step: LlmCallStep, text: str, turn: int) -> None:
        """A step that asks for JSON may answer `{"plan": [...], "done": [n, ...], ...}`."""
        if step.output != "json":
            return
        try:
            reply = json.loads(text)
        except json.JSONDecodeError:
            return
        if not isinstance(reply, dict) or "plan" not in reply:
            return
        call = ToolCall(id="reply", name=PLAN_TOOL, arguments={
            "items": reply.get("plan"), "done": reply.get("done") or []
        })  # fmt: skip
        self._plan_tool(step, call, turn)

    def _update_plan(
        self, step: LlmCallStep, items: list[AgentPlanItem] | None, done: set[int], turn: int
    ) -> None:
        state = self.wf.tracker.state
        if items is not None:
            previously_done = {i.number for i in state.agent_plan if i.done}
            for item in items:
                item.done = item.number in previously_done
            state.agent_plan = items
        newly = [i for i in state.agent_plan if i.number in done and not i.done]
        for item in newly:
            item.done = True
        if newly:
            self.turns_since_progress = 0
        if items is None and not newly:
            return
        completed = sum(1 for i in state.agent_plan if i.done)
        self.wf.tracker.emit(
            EventType.PLAN_UPDATED,
            step.id,
            f"plan: {completed}/{len(state.agent_plan)} done",
            items=[i.model_dump() for i in state.agent_plan],
            iteration=turn,
        )

    def _plan_text(self) -> str:
        return "\n".join(
            f"{i.number}. [{'x' if i.done else ' '}] {i.text}"
            for i in self.wf.tracker.state.agent_plan
        )

    def _check_drift(self, step: LlmCallStep, messages: list[ChatMessage]) -> None:
        plan = self.wf.tracker.state.agent_plan
        after = self.wf.inp.config.drift_after_turns
        if not plan or all(i.done for i in plan) or self.turns_since_progress < after:
            return
        pending = next(i for i in plan if not i.done)
        reminder = (
            f"Reminder: no step of your plan was completed in the last "
            f"{self.turns_since_progress} turns. Your plan:\n{self._plan_text()}\n"
            f"Focus on step {pending.number}: {pending.text}"
        )
        self.wf.tracker.emit(
            EventType.DRIFT_ALERT,
            step.id,
            f"no plan progress in {self.turns_since_progress} turns",
            turns=self.turns_since_progress,
            next_item=pending.number,
        )
        messages.append(ChatMessage(role="user", content=reminder))
        self.turns_since_progress = 0

    # ------------------------------------------------------------ state, continue-as-new
    def _publish(self, step: LlmCallStep, messages: list[ChatMessage], calls: int) -> None:
        cfg = self.wf.inp.config
        cut = cfg.max_conversation_chars
        view = messages[-cfg.max_conversation_messages :]
        s = self.wf.tracker.step(step.id)
        s.model_calls = calls
        s.conversation = [
            m if m.content is None else m.model_copy(update={"content": clip(m.content, cut)})
            for m in view
        ]

    async def _maybe_continue_as_new(
        self, step: LlmCallStep, messages: list[ChatMessage], calls: int
    ) -> None:
        made = calls - self._calls_at_start
        if made == 0:
            return
        after = self.wf.inp.config.continue_as_new_after_turns
        if not (after and made >= after) and not workflow.info().is_continue_as_new_suggested():
            return
        await self.wf.continue_as_new(
            AgentCarry(
                step_id=step.id,
                messages=messages,
                calls=calls,
                turns_since_progress=self.turns_since_progress,
                steers=self.steers,
                collected=self.collected,
                followups=self.followups,
            )
        )


async def _cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Request the activity's cancellation and wait until it has stopped (or ended)."""
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, StepFailure):
        pass


def _model_label(spec: ModelSpec) -> str:
    """How events name a model: `endpoint/name` (or the provider's name)."""
    where = spec.endpoint or spec.provider or "default"
    return f"{where}/{spec.name}" if spec.name else where


def _transient(error: RunError) -> bool:
    """A failure another model may not have: the endpoint refused (429), failed (5xx),
    could not be reached, or did not answer in time. A bad request, an empty or cut-off
    reply or a budget stop is the same on any model."""
    return error.details.get("transient") is True or error.code == contracts.E_TIMEOUT


def _tool_content(result: ToolResult) -> str:
    if result.error:
        return json.dumps({"error": result.error})
    if isinstance(result.output, str):
        return result.output
    return json.dumps(result.output, sort_keys=True, default=str)
