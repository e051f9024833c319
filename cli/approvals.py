"""`duratask run approve|reject ID -m COMMENT` and `duratask approvals`.

The CLI decides as whoever its token says (the gateway takes the approver from the
token), so there is no `--as` option: to decide as someone else, use their token.
`approve --output TEXT` / `--edit-file FILE` (with `--json` for a JSON value) approves
with an edit: the gated step's output is replaced by it for the steps after.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from cli.client import Gateway, die, parse_json
from cli.output import console

out = console()


def _decide(decision: str, run_id: str, comment: str | None, output: Any = None) -> None:
    body: dict[str, Any] = {"decision": decision}
    if comment:
        body["comment"] = comment
    if output is not None:
        body["output"] = output
    res = Gateway().post(f"/v1/runs/{run_id}/approvals", json=body)
    verb = "approved" if decision == "approve" else "rejected"
    step = f" step '{res['step_id']}'" if res.get("step_id") else ""
    edited = " with your edit" if res.get("edited") else ""
    out.print(f"{verb}{step} of {run_id}{edited} as [bold]{res['approver']}[/bold]",
              highlight=False)  # fmt: skip


def _edit(output: str | None, edit_file: Path | None, as_json: bool) -> Any:
    """The edited output the options give (None: no edit)."""
    if output is not None and edit_file is not None:
        die("give --output or --edit-file, not both", 2)
    if edit_file is not None:
        try:
            output = edit_file.read_text(encoding="utf-8")
        except OSError as e:
            die(f"cannot read --edit-file {edit_file}: {e.strerror}", 2)
    if output is None:
        if as_json:
            die("--json needs --output or --edit-file", 2)
        return None
    if not as_json:
        return output
    return parse_json(output, "the edited output")


def approve(
    run_id: str,
    message: str | None = typer.Option(None, "--message", "-m", help="comment for the audit"),
    output: str | None = typer.Option(
        None, "--output", "-o", help="approve with an edit: the gated step's new output"
    ),
    edit_file: Path | None = typer.Option(
        None, "--edit-file", help="approve with an edit read from this file"
    ),
    as_json: bool = typer.Option(
        False, "--json", help="the edit is JSON (else it is taken as text)"
    ),
) -> None:
    """Approve the approval step a run waits at (as the identity of your token),
    optionally replacing the output of the step it gates (--output / --edit-file)."""
    _decide("approve", run_id, message, _edit(output, edit_file, as_json))


def reject(
    run_id: str,
    message: str | None = typer.Option(None, "--message", "-m", help="why (kept for audit)"),
) -> None:
    """Reject the approval step a run waits at (as the identity of your token)."""
    _decide("reject", run_id, message)


def list_approvals(
    approver: str = typer.Option("me", "--approver", "-a", help="'me' or an identity"),
    limit: int = typer.Option(50, "--limit", "-n"),
) -> None:
    """List runs waiting for your decision (or another approver's)."""
    res = Gateway().get("/v1/approvals", params={"approver": approver, "page_size": limit})
    if not res["items"]:
        out.print(f"nothing waits for {', '.join(res['approver'])}", highlight=False)
        return
    table = Table("step", "definition", "votes", "deadline", "prompt")
    table.columns.insert(0, Column("run", no_wrap=True))
    for item in res["items"]:
        votes = f"{sum(v['decision'] == 'approve' for v in item['votes'])}/{item['min_approvals']}"
        table.add_row(item["run_id"], item.get("step_id") or "", item.get("definition_id") or "",
                      votes, (item.get("deadline") or "")[:16],
                      escape(_what(item)))  # fmt: skip
    out.print(table)
    out.print("decide with: duratask run approve|reject <run> -m '<comment>'")


def _what(item: dict[str, Any]) -> str:
    """The prompt, or for a held tool call the tool and its (masked) arguments."""
    tool = item.get("tool")
    if tool:
        args = json.dumps(tool.get("arguments") or {}, sort_keys=True)
        return f"tool {tool['name']} {args}"[:160]
    return (item.get("prompt") or "")[:80]
