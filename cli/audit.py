"""`duratask audit`: who did what, newest first (what your token may see)."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from cli.client import Gateway

out = Console()


def audit(
    kind: str | None = typer.Option(
        None, "--kind", help="run | definition | schedule | scheduling"
    ),
    resource: str | None = typer.Option(None, "--id", help="one run, definition or schedule id"),
    actor: str | None = typer.Option(None, "--actor", help="only this identity's acts"),
    limit: int = typer.Option(50, "--limit", "-n"),
    as_json: bool = typer.Option(False, "--json", help="print the entries as JSON"),
) -> None:
    """List audit entries: start, cancel, retry, priority, messages, definition and
    schedule changes, with who and when."""
    params = {k: v for k, v in (("kind", kind), ("resource_id", resource), ("actor", actor))
              if v}  # fmt: skip
    res = Gateway().get("/v1/audit", params={**params, "limit": limit})
    if as_json:
        out.print_json(json.dumps(res["items"]))
        return
    if not res["items"]:
        out.print("no audit entries")
        return
    table = Table("when", "who", "action", Column("resource", no_wrap=True), "owner", "detail")
    for e in res["items"]:
        detail = ", ".join(f"{k}={v}" for k, v in e["detail"].items())
        table.add_row(e["at"][:19], e["actor"], e["action"], e["resource_id"],
                      e.get("owner") or "", escape(detail[:80]))  # fmt: skip
    out.print(table)
