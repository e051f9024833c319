"""The agent loop of an `llm_call` step, and the interventions that steer it.

One turn: call the model; if it asks for tools, run them (in parallel, each its own
activity) and call the model again with their results; stop when it answers with no
tool calls or `max_steps` model calls have been made. Interventions arrive as the
`intervene` signal:

- `steer` cancels the in-flight model call and restarts it with the message added;
- `collect` buffers messages and merges them into one follow-up turn afterwards;
- `followup` queues a new turn per message after the current one.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from temporalio import workflow

from workflows import contracts
from workflows.definition import LlmCallStep, ModelSpec
from workflows.errors import fail
from workflows.models import (
    ChatMessage,
    Intervention,
    LlmRequest,
    LlmResponse,
    ToolCall,
    ToolResult,
)
from workflows.templates import render_text

if TYPE_CHECKING:
    from workflows.run_workflow import TaskRunWorkflow


class AgentLoop:
    def __init__(self, wf: TaskRunWorkflow) -> None:
        self.wf = wf
        self.steers: list[Intervention] = []
        self.collected: list[Intervention] = []
        self.followups: list[Intervention] = []
        self.conversations: dict[str, list[ChatMessage]] = {}

    # ------------------------------------------------------------ signals
    def intervene(self, msg: Intervention) -> None:
        self.wf.tracker.emit(
            "intervention.received",
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
        base = self.wf.inp.config.default_model
        definition_model = self.wf.definition.model
        model = definition_model.merged_over(base) if definition_model else base
        if step.model:
            model = step.model.merged_over(model)
        if not model.provider:
            model = model.model_copy(update={"provider": base.provider, "name": base.name})
        return model

    async def run(self, step: LlmCallStep) -> tuple[Any, bool]:
        ns = self.wf.namespace()
        messages: list[ChatMessage] = []
        if step.system:
            messages.append(ChatMessage(role="system", content=render_text(step.system, ns)))
        messages.append(ChatMessage(role="user", content=render_text(step.prompt, ns)))
        self.conversations[step.id] = messages
        tools = self.wf.definition.tools if step.tools is None else step.tools
        limit = step.max_steps or self.wf.definition.limits.max_steps
        model = self.model_for(step)
        calls = 0
        while True:
            response, calls = await self._turn(step, model, messages, tools, calls, limit)
            extra = self._next_turn_message()
            if extra is None:
                return self._output(step, response)
            messages.append(ChatMessage(role="user", content=extra))

    def _next_turn_message(self) -> str | None:
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
            calls += 1
            last = await self._call_model(step, model, messages, tools, calls)
            messages.append(
                ChatMessage(role="assistant", content=last.text, tool_calls=last.tool_calls)
            )
            if not last.tool_calls:
                return last, calls
            results = await asyncio.gather(
                *(self._call_tool(step, call, calls) for call in last.tool_calls)
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

    async def _call_model(
        self,
        step: LlmCallStep,
        model: ModelSpec,
        messages: list[ChatMessage],
        tools: list[str],
        turn: int,
    ) -> LlmResponse:
        tracker = self.wf.tracker
        while True:
            self._apply_steers(messages)
            req = LlmRequest(
                run_id=tracker.state.run_id,
                step_id=step.id,
                model=model,
                messages=messages,
                tools=tools,
                turn=turn,
                max_output_bytes=self.wf.inp.config.max_output_bytes,
            )
            summary = f"{step.id}: {model.provider}/{model.name} turn {turn}"
            task = asyncio.ensure_future(
                self.wf.activity(contracts.LLM_ACTIVITY, req, LlmResponse, step, summary)
            )
            await workflow.wait_condition(lambda t=task: t.done() or bool(self.steers))  # type: ignore[misc]
            if task.done():
                response: LlmResponse = task.result()
                break
            task.cancel()  # steer: stop the in-flight call, then restart with the message
            try:
                await task
            except asyncio.CancelledError:
                pass
            tracker.emit("llm.steered", step.id, "model call cancelled by steer", turn=turn)
        tracker.step(step.id).usage.add(response.usage)
        tracker.state.usage.add(response.usage)
        tracker.emit(
            "llm.completed",
            step.id,
            None,
            turn=turn,
            tool_calls=len(response.tool_calls),
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            cost_usd=response.usage.cost_usd,
        )
        return response

    def _apply_steers(self, messages: list[ChatMessage]) -> None:
        while self.steers:
            messages.append(ChatMessage(role="user", content=self.steers.pop(0).message))

    async def _call_tool(self, step: LlmCallStep, call: ToolCall, turn: int) -> ToolResult:
        allowed = self.wf.definition.tools if step.tools is None else step.tools
        if call.name not in allowed:
            msg = f"tool '{call.name}' is not allowed for this step (allowed: {', '.join(allowed)})"
            self.wf.tracker.emit("run.tool_completed", step.id, msg, tool=call.name, error=True)
            return ToolResult(error=msg)
        return await self.wf.call_tool(step, call.name, call.arguments, call_id=f"{turn}-{call.id}")


def _tool_content(result: ToolResult) -> str:
    if result.error:
        return json.dumps({"error": result.error})
    if isinstance(result.output, str):
        return result.output
    return json.dumps(result.output, sort_keys=True, default=str)
