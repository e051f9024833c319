"""`duratask run ...`: start, list, show, wait, cancel, retry, message a run."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from cli.client import Gateway, die
from cli.output import console

app = typer.Typer(help="Runs of task definitions.", no_args_is_help=True, rich_markup_mode=None)
out = console()

STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "awaiting_approval": "magenta",
    "awaiting_input": "magenta",
}
EXIT_CODES = {"completed": 0, "failed": 1, "cancelled": 3}


def parse_inputs(pairs: list[str]) -> dict[str, Any]:
    """`k=v` pairs; a value that parses as JSON (numbers, true, lists) is taken as such."""
    result: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            die(f"--input expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            result[key] = json.loads(value)
        except ValueError:
            result[key] = value
    return result


def print_state(state: dict[str, Any]) -> None:
    status = state["status"]
    out.print(
        f"[bold]{state['run_id']}[/bold]  {state['definition_id']} v{state['definition_version']}"
        f"  [{STATUS_STYLE.get(status, 'white')}]{status}[/]"
    )
    table = Table("step", "action", "status", "ms", "output / error")
    for s in state["steps"]:
        detail = s["error"]["message"] if s.get("error") else s.get("output")
        text = detail if isinstance(detail, str) else json.dumps(detail)
        table.add_row(s["id"], s["action"], s["status"], str(s.get("duration_ms") or ""),
                      (text or "")[:120])  # fmt: skip
    out.print(table)
    _print_models(state)
    _print_collab(state)
    for pending in state.get("pending_approvals") or []:
        out.print(
            f"[magenta]waiting for approval[/magenta] of '{pending['step_id']}' by "
            f"{', '.join(pending['approvers'])} ({len(pending['votes'])}/"
            f"{pending['min_approvals']} votes, until {pending['deadline'][:16]}): "
            f"{escape(pending.get('prompt') or '')}\n  decide: duratask run approve|reject "
            f"{state['run_id']} -m '<comment>'"
            + (f"\n  approve with an edit of '{pending['edits']}': duratask run approve "
               f"{state['run_id']} --edit-file <file>" if pending.get("edits") else ""),
            highlight=False,
        )  # fmt: skip
        if pending.get("tool"):  # a tool call held by a policy: what it would do
            args = json.dumps(pending["tool"].get("arguments") or {}, indent=1, sort_keys=True)
            out.print(f"  tool [bold]{escape(pending['tool']['name'])}[/bold] arguments:\n"
                      f"{escape(args)}", highlight=False)  # fmt: skip
    if state.get("error"):
        e = state["error"]
        out.print(f"[red]{e['code']}[/red]: {e['message']}")
    if state.get("temporal_ui_url"):
        out.print(f"Temporal UI: {state['temporal_ui_url']}")


def _print_models(state: dict[str, Any]) -> None:
    """Steps a fallback model answered, and calls waiting for an endpoint's rate limit
    (docs/models-and-tools.md)."""
    for s in state["steps"]:
        model = s.get("model") or {}
        if model.get("fallback"):
            where = f"{model.get('endpoint') or ''}/{model.get('name') or ''}"
            out.print(f"'{s['id']}' was answered by fallback {model['fallback']}: "
                      f"{escape(where)}", highlight=False)  # fmt: skip
        wait = s.get("waiting_for_rate_limit")
        if wait:
            out.print(f"[yellow]waiting for the rate limit[/yellow] of endpoint "
                      f"'{escape(wait['endpoint'])}' ({wait['limit']}) until "
                      f"{wait['until'][:19]}: '{s['id']}'", highlight=False)  # fmt: skip


def _print_collab(state: dict[str, Any]) -> None:
    """Where the run came from, its ratings, thread and assignee (docs/collaboration.md)."""
    if state.get("source"):
        origin = ", ".join(f"{k}={v}" for k, v in state["source"].items())
        out.print(f"source: {escape(origin)}", highlight=False)
    votes = state.get("rating_summary") or {}
    parts = [f"up {votes['up']} / down {votes['down']}"] if any(votes.values()) else []
    if state.get("comment_count"):
        parts.append(f"{state['comment_count']} comment(s)")
    if state.get("assignee"):
        parts.append(f"assigned to {escape(state['assignee'])}")
    if parts:
        out.print(", ".join(parts) + f"  (duratask run comments {state['run_id']})",
                  highlight=False)  # fmt: skip


def finish(state: dict[str, Any]) -> None:
    if state["status"] == "completed":
        result = state.get("result")
        out.print(result if isinstance(result, str) else json.dumps(result, indent=2))
    raise typer.Exit(EXIT_CODES.get(state["status"], 0))


@app.command("start")
def start(
    definition_id: str,
    input: list[str] = typer.Option([], "--input", "-i", help="key=value (repeatable)"),
    input_json: str | None = typer.Option(None, "--input-json", help="the input as JSON"),
    version: int | None = typer.Option(None, "--version"),
    priority: str = typer.Option("normal", "--priority", "-p"),
    owner: str | None = typer.Option(None, "--owner", help="another owner (needs tasks:admin)"),
    team: str | None = typer.Option(None, "--team", help="share with one of your groups"),
    idempotency_key: str | None = typer.Option(None, "--idempotency-key"),
    start_at: str | None = typer.Option(None, "--start-at", help="ISO 8601 time"),
    wait: bool = typer.Option(False, "--wait", "-w", help="wait for the result"),
    timeout: float = typer.Option(300, "--timeout", help="seconds to wait"),
    follow: bool = typer.Option(False, "--follow", "-f", help="watch the run live until it ends"),
    plain: bool = typer.Option(False, "--plain", help="with --follow: one line per event"),
    source: list[str] = typer.Option(
        [], "--source", help="provenance key=value, e.g. kind=chat conversation_id=c1 (repeatable)"
    ),
) -> None:
    """Start a run of a definition."""
    body: dict[str, Any] = {
        "definition_id": definition_id,
        "input": json.loads(input_json) if input_json else parse_inputs(input),
        "priority": priority,
        "trigger": "cli",
    }
    for key, value in (("version", version), ("owner", owner), ("team", team),
                       ("idempotency_key", idempotency_key), ("start_at", start_at)):  # fmt: skip
        if value is not None:
            body[key] = value
    if source:
        body["source"] = {k: str(v) for k, v in parse_inputs(source).items()}
    gw = Gateway()
    state = gw.post("/v1/runs", json=body)
    run_id = state["run_id"]
    out.print(f"started [bold]{run_id}[/bold] ({state['status']})", highlight=False)
    if follow:
        _follow(run_id, plain, gw)
    if not wait:
        out.print(f"Temporal UI: {state['temporal_ui_url']}")
        return
    res = gw.get(f"/v1/runs/{run_id}/result", params={"wait": timeout})
    if not res["done"]:
        die(f"run {run_id} still {res['status']} after {timeout}s", code=4)
    if res["status"] != "completed":
        print_state(res["state"])
    finish(res["state"])


def _follow(run_id: str, plain: bool, gw: Gateway | None = None) -> None:
    from cli.watch import watch as watch_run

    final = watch_run(run_id, plain=True if plain else None, gw=gw)
    raise typer.Exit(EXIT_CODES.get(final, 1))


@app.command("watch")
def watch(
    run_id: str,
    plain: bool = typer.Option(False, "--plain", help="one line per event (default off a TTY)"),
) -> None:
    """Follow a run live: steps, streamed model text, progress, approvals; exits with its outcome."""
    _follow(run_id, plain)


@app.command("show")
def show(run_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show a run's state: steps, outputs, errors."""
    state = Gateway().get(f"/v1/runs/{run_id}")
    if as_json:
        out.print_json(data=state)
    else:
        print_state(state)


@app.command("result")
def result(run_id: str, wait: float = typer.Option(60, "--wait")) -> None:
    """Wait for a run to end and print its result."""
    res = Gateway().get(f"/v1/runs/{run_id}/result", params={"wait": wait})
    if not res["done"]:
        die(f"run {run_id} still {res['status']} after {wait}s", code=4)
    finish(res["state"])


@app.command("list")
def list_(
    definition: str | None = typer.Option(None, "--definition", "-d"),
    status: str | None = typer.Option(None, "--status", "-s"),
    owner: str | None = typer.Option(None, "--owner"),
    trigger: str | None = typer.Option(None, "--trigger"),
    limit: int = typer.Option(20, "--limit", "-n"),
) -> None:
    """List runs (newest first), filtered by definition, status, owner or trigger."""
    params = {k: v for k, v in (("definition_id", definition), ("status", status),
              ("owner", owner), ("trigger", trigger)) if v}  # fmt: skip
    res = Gateway().get("/v1/runs", params={**params, "page_size": limit})
    table = Table("definition", "status", "trigger", "owner", "assignee", "source", "started")
    table.columns.insert(0, Column("run", no_wrap=True))
    for r in res["items"]:
        trig = (r.get("trigger") or "") + (" (proactive)" if r.get("proactive") else "")
        table.add_row(r["run_id"], r.get("definition_id") or "",
                      f"[{STATUS_STYLE.get(r['status'], 'white')}]{r['status']}[/]", trig,
                      r.get("owner") or "", r.get("assignee") or "",
                      " ".join(f"{k}={v}" for k, v in (r.get("source") or {}).items()),
                      (r.get("start_time") or "")[:19])  # fmt: skip
    out.print(table)


@app.command("cancel")
def cancel(run_id: str, reason: str = typer.Option("", "--reason", "-r")) -> None:
    """Cancel a run; in-flight activities are cancelled too."""
    Gateway().post(f"/v1/runs/{run_id}/cancel", json={"reason": reason})
    out.print(f"cancelling {run_id}")


@app.command("retry")
def retry(
    run_id: str,
    input: list[str] = typer.Option([], "--input", "-i", help="changed input key=value"),
) -> None:
    """Start a new run of the same definition version, linked to this one."""
    body = {"input": parse_inputs(input)} if input else {}
    state = Gateway().post(f"/v1/runs/{run_id}/retry", json=body)
    out.print(f"retried as [bold]{state['run_id']}[/bold] (retry {state['retry_count']})")


def _message(mode: str, run_id: str, text: str) -> None:
    Gateway().post(f"/v1/runs/{run_id}/messages", json={"mode": mode, "message": text})
    out.print(f"{mode} message sent to {run_id}")


@app.command("steer")
def steer(run_id: str, text: str) -> None:
    """Interrupt the in-flight model call and restart it with this message."""
    _message("steer", run_id, text)


@app.command("collect")
def collect(run_id: str, text: str) -> None:
    """Buffer a message; buffered messages become one turn after the current one."""
    _message("collect", run_id, text)


@app.command("followup")
def followup(run_id: str, text: str) -> None:
    """Queue a message as a new turn after the current one."""
    _message("followup", run_id, text)
