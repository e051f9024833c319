"""`duratask run approve|reject ID -m COMMENT` and `duratask approvals`.

The CLI decides as whoever its token says (the gateway takes the approver from the
token), so there is no `--as` option: to decide as someone else, use their token.
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from cli.client import Gateway
from cli.output import console

out = console()


def _decide(decision: str, run_id: str, comment: str | None) -> None:
    body: dict[str, Any] = {"decision": decision}
    if comment:
        body["comment"] = comment
    res = Gateway().post(f"/v1/runs/{run_id}/approvals", json=body)
    verb = "approved" if decision == "approve" else "rejected"
    step = f" step '{res['step_id']}'" if res.get("step_id") else ""
    out.print(f"{verb}{step} of {run_id} as [bold]{res['approver']}[/bold]", highlight=False)


def approve(
    run_id: str,
    message: str | None = typer.Option(None, "--message", "-m", help="comment for the audit"),
) -> None:
    """Approve the approval step a run waits at (as the identity of your token)."""
    _decide("approve", run_id, message)


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
