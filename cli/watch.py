"""`duratask run watch` / `run start --follow`: follow a run's events live.

The CLI is one more SSE client of `GET /v1/runs/{id}/events`. It remembers the last
event id it saw and, when the connection drops (gateway restart, proxy timeout, a
client dropped for falling behind), reconnects with `Last-Event-ID`, so nothing is
lost or shown twice. On a terminal it draws a live Rich view (the steps with
checkboxes, the current step's streamed text, a progress bar, approvals waited for);
when stdout is not a terminal, or with `--plain`, it prints one line per event, which
is what logs and tests read.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

import httpx
from httpx_sse import connect_sse
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from cli.client import Gateway, die
from cli.output import console
from workflows.events import EventType

TERMINAL = {
    EventType.RUN_COMPLETED: "completed",
    EventType.RUN_FAILED: "failed",
    EventType.RUN_CANCELLED: "cancelled",
}
MARK = {
    "pending": ("☐", "dim"),
    "running": ("▶", "cyan"),
    "completed": ("☑", "green"),
    "failed": ("✗", "red"),
    "skipped": ("-", "dim"),
    "cancelled": ("✗", "yellow"),
    "waiting": ("⏸", "magenta"),
}
MAX_TEXT = 4000  # streamed characters kept for the live view
READ_TIMEOUT_S = 60.0  # the gateway sends a keep-alive every 15 s
MAX_QUIET_RECONNECTS = 20


@dataclass
class StepView:
    id: str
    label: str
    status: str = "pending"
    note: str = ""


@dataclass
class RunView:
    """What the watcher knows about the run, built from its events."""

    run_id: str
    status: str = "queued"
    steps: dict[str, StepView] = field(default_factory=dict)
    current: str | None = None
    text: str = ""
    attempt: int = 1
    percent: int = 0
    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None
    last_id: int | None = None

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RunView:
        view = cls(run_id=state["run_id"], status=state["status"])
        labels = {p["step_id"]: p["label"] for p in state.get("plan", [])}
        for s in state.get("steps", []):
            view.steps[s["id"]] = StepView(s["id"], labels.get(s["id"]) or s["id"])
        return view

    def step(self, step_id: str) -> StepView:
        if step_id not in self.steps:
            self.steps[step_id] = StepView(step_id, step_id)
        return self.steps[step_id]

    def apply(self, ev: dict[str, Any]) -> None:
        kind, sid, data = ev["type"], ev.get("step_id"), ev.get("data") or {}
        self.last_id = ev["offset"]
        if kind == EventType.RUN_STARTED:
            self.status = "running"
        elif kind == EventType.STEP_STARTED and sid:
            self.step(sid).status = "running"
            self.current, self.text, self.attempt = sid, "", 1
        elif (
            kind in (EventType.STEP_COMPLETED, EventType.STEP_FAILED, EventType.STEP_SKIPPED)
            and sid
        ):
            self.step(sid).status = kind.split(".")[1]
            if kind == EventType.STEP_FAILED:
                self.step(sid).note = ev.get("message") or ""
        elif kind == EventType.LLM_RETRY:
            self.text, self.attempt = "", int(data.get("attempt", self.attempt + 1))
        elif kind == EventType.LLM_STEERED:  # the call was cut short and restarts with the message
            self.text, self.attempt = "", 1
        elif kind == EventType.LLM_DELTA:
            if int(data.get("attempt", 1)) > self.attempt:  # a retry's text replaces the old
                self.text, self.attempt = "", int(data["attempt"])
            self.text = (self.text + data.get("text", ""))[-MAX_TEXT:]
        elif kind == EventType.PROGRESS:
            self.percent = int(data.get("percent", self.percent))
        elif kind == EventType.AWAITING_APPROVAL:
            self.status = "awaiting_approval"
            self.approvals[sid or "?"] = data
            if sid:
                self.step(sid).status = "waiting"
        elif kind == EventType.AWAITING_INPUT:  # an `input` step waits for a value
            self.status = "awaiting_input"
            if sid:
                self.step(sid).status = "waiting"
        elif kind == EventType.APPROVAL_DECIDED:
            self.approvals.pop(sid or "?", None)
        elif kind in (EventType.TOOL_REQUESTED, EventType.CHILD_STARTED) and sid:
            self.step(sid).note = ev.get("message") or ""
        elif kind in TERMINAL:
            self.status = TERMINAL[kind]
            self.current = None
            if kind == EventType.RUN_COMPLETED:
                self.percent = 100
            else:
                self.error = ev.get("message")

    # ------------------------------------------------------------ rich view
    def render(self) -> RenderableType:
        table = Table.grid(padding=(0, 1))
        for s in self.steps.values():
            mark, style = MARK.get(s.status, ("?", "white"))
            label = s.id if s.label == s.id else f"{s.id} ({s.label})"
            table.add_row(Text(mark, style=style), Text(label, style=style),
                          Text(s.status, style=style), Text(s.note[:60], style="dim"))  # fmt: skip
        parts: list[RenderableType] = [
            Text.assemble((self.run_id, "bold"), "  ", (self.status, _status_style(self.status))),
            table,
        ]
        if self.current and self.text:
            tail = self.text[-800:]
            parts.append(Panel(tail, title=f"{self.current}", title_align="left", style="cyan"))
        for step_id, data in self.approvals.items():
            who = ", ".join(data.get("approvers", [])) or "an approver"
            parts.append(Text(f"⏸ {step_id}: waiting for approval by {who}", style="magenta"))
        parts.append(
            Group(ProgressBar(total=100, completed=self.percent, width=40), f"{self.percent}%")
        )
        if self.error:
            parts.append(Text(self.error, style="red"))
        return Group(*parts)


def _status_style(status: str) -> str:
    return {"completed": "green", "failed": "red", "cancelled": "yellow"}.get(status, "cyan")


class PlainPrinter:
    """One line per event; streamed text is written as it comes, under its step."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.streaming = False

    def __call__(self, ev: dict[str, Any]) -> None:
        kind, data = ev["type"], ev.get("data") or {}
        if kind == EventType.LLM_DELTA:
            if not self.streaming:
                self.out.write(f"  {ev.get('step_id')}> ")
                self.streaming = True
            self.out.write(data.get("text", ""))
            self.out.flush()
            return
        if self.streaming:
            self.out.write("\n")
            self.streaming = False
        stamp = _clock(ev.get("time"))
        parts = [stamp, kind]
        if ev.get("step_id"):
            parts.append(ev["step_id"])
        detail = _detail(kind, data, ev.get("message"))
        if detail:
            parts.append(detail)
        self.out.write(" ".join(parts) + "\n")
        self.out.flush()


def _clock(value: str | None) -> str:
    try:
        return datetime.fromisoformat(value or "").strftime("%H:%M:%S")
    except ValueError:
        return "--:--:--"


def _detail(kind: str, data: dict[str, Any], message: str | None) -> str:
    if kind == EventType.PROGRESS:
        return f"{data.get('percent', 0)}%"
    if kind == EventType.LLM_COMPLETED:
        tokens = f"{data.get('input_tokens', 0)} in / {data.get('output_tokens', 0)} out tokens"
        return tokens + (" (estimated)" if data.get("usage_estimated") else "")
    if kind in (EventType.TOOL_REQUESTED, EventType.TOOL_COMPLETED):
        return f"{data.get('tool', '')}" + (" error" if data.get("error") else "")
    if kind == EventType.LLM_RETRY:
        return f"attempt {data.get('attempt')}: earlier text discarded"
    if kind in (
        EventType.RUN_FAILED,
        EventType.STEP_FAILED,
        EventType.RUN_CANCELLED,
        EventType.INTERVENTION,
    ):
        return message or ""
    if kind == EventType.AWAITING_APPROVAL:
        return "approvers: " + ", ".join(data.get("approvers", []))
    return ""


class Follower:
    """Reads the run's SSE stream until its terminal event, reconnecting as needed."""

    def __init__(self, gw: Gateway, run_id: str, on_event: Any, err: Console) -> None:
        self.gw = gw
        self.run_id = run_id
        self.on_event = on_event
        self.err = err
        self.last_id: str | None = None
        self.final: str | None = None

    def run(self) -> str:
        quiet = 0
        while self.final is None:
            before = self.last_id
            problem = self._connect()
            if self.final is not None:
                break
            if problem is None:  # the stream ended without a terminal event (e.g. terminated)
                status = self.gw.get(f"/v1/runs/{self.run_id}")["status"]
                if status in ("completed", "failed", "cancelled"):
                    self.final = status
                    break
                problem = "stream ended early"
            quiet = 0 if self.last_id != before else quiet + 1
            if quiet >= MAX_QUIET_RECONNECTS:
                die(f"lost the event stream of {self.run_id}: {problem}")
            delay = min(5.0, 0.25 * 2**quiet)
            self.err.print(f"[dim]reconnecting ({problem}) after event {self.last_id}[/dim]")
            time.sleep(delay)
        return self.final

    def _connect(self) -> str | None:
        headers = {} if self.last_id is None else {"Last-Event-ID": str(self.last_id)}
        timeout = httpx.Timeout(10.0, read=READ_TIMEOUT_S)
        try:
            with connect_sse(
                self.gw.http, "GET", f"/v1/runs/{self.run_id}/events",
                headers=headers, timeout=timeout,
            ) as source:  # fmt: skip
                resp = source.response
                if resp.status_code >= 400:
                    resp.read()
                    detail = _detail_of(resp)
                    die(f"{resp.status_code}: {detail}", code=2 if resp.status_code < 500 else 1)
                for sse in source.iter_sse():
                    if sse.event == "error":
                        return str(json.loads(sse.data or "{}").get("detail", "stream error"))
                    if not sse.data:
                        continue
                    ev = json.loads(sse.data)
                    self.last_id = sse.id or str(ev["offset"])  # `12`, or `12.345` (a delta)
                    self.on_event(ev)
                    if ev["type"] in TERMINAL:
                        self.final = TERMINAL[ev["type"]]
                        return None
        except httpx.ConnectError:
            return f"cannot reach the gateway at {self.gw.url}"
        except httpx.HTTPError as e:
            return f"connection lost: {type(e).__name__}"
        return None


def _detail_of(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("detail", resp.text))
    except ValueError:
        return resp.text


def watch(run_id: str, plain: bool | None = None, gw: Gateway | None = None) -> str:
    """Follow the run until it ends; returns its final status."""
    gw = gw or Gateway()
    err = console(stderr=True)
    out = console()
    if plain is None:
        plain = not sys.stdout.isatty()
    if plain:
        printer = PlainPrinter(sys.stdout)
        print(f"watching {run_id}", flush=True)
        final = Follower(gw, run_id, printer, err).run()
        if printer.streaming:
            print()
        print(f"run {run_id} {final}", flush=True)
        return final
    view = RunView.from_state(gw.get(f"/v1/runs/{run_id}"))
    with Live(view.render(), console=out, refresh_per_second=8, transient=False) as live:

        def on_event(ev: dict[str, Any]) -> None:
            view.apply(ev)
            live.update(view.render())

        final = Follower(gw, run_id, on_event, err).run()
    return final
