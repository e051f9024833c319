"""`duratask run rate|comment|comments` and `duratask handoffs`: the run's thread.

Like approvals, the CLI acts as whoever its token says: the gateway takes the rater
and the author from the token, so there is no `--as` option.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from cli.client import Gateway, die
from cli.output import console

out = console()


def rate(
    run_id: str,
    score: str = typer.Argument(..., help="up or down"),
    comment: str | None = typer.Option(None, "--comment", "-m", help="what was good or not"),
) -> None:
    """Rate a finished run thumbs up or down (rating again replaces your rating)."""
    if score not in ("up", "down"):
        die(f"score must be 'up' or 'down', not {score!r}")
    body: dict[str, Any] = {"score": score}
    if comment:
        body["comment"] = comment
    res = Gateway().request("PUT", f"/v1/runs/{run_id}/rating", json=body)
    out.print(f"rated {run_id} [bold]{res['score']}[/bold] as {res['identity']}", highlight=False)


def comment(
    run_id: str,
    text: str,
    note: bool = typer.Option(False, "--note", help="an operator note, not a comment"),
    handoff_to: str | None = typer.Option(
        None, "--handoff-to", help="hand the run over to this identity"
    ),
) -> None:
    """Add a comment (or --note, or --handoff-to WHO) to a run's thread."""
    if note and handoff_to:
        die("use either --note or --handoff-to, not both")
    body: dict[str, Any] = {"body": text, "kind": "note" if note else "comment"}
    if handoff_to is not None:
        body.update(kind="handoff", to=handoff_to)
    res = Gateway().post(f"/v1/runs/{run_id}/comments", json=body)
    what = f"handed {run_id} to {res['to']}" if res["kind"] == "handoff" else f"{res['kind']} added"
    out.print(f"{what} (#{res['id']} by {res['author']})", highlight=False)


def comments(
    run_id: str,
    limit: int = typer.Option(200, "--limit", "-n", help="at most this many entries"),
) -> None:
    """Show a run's thread (oldest first), its assignee and its ratings."""
    gw = Gateway()
    items: list[dict[str, Any]] = []
    token: str | None = None
    res: dict[str, Any] = {}
    while len(items) < limit:
        params: dict[str, Any] = {"page_size": min(500, limit - len(items))}
        if token:
            params["page_token"] = token
        res = gw.get(f"/v1/runs/{run_id}/comments", params=params)
        items.extend(res["items"])
        token = res.get("next_page_token")
        if not token:
            break
    ratings = gw.get(f"/v1/runs/{run_id}/ratings")
    s = ratings["summary"]
    assignee = (res.get("assignee") or {}).get("assignee")
    out.print(f"[bold]{run_id}[/bold]  up {s['up']}  down {s['down']}"
              + (f"  assigned to [bold]{escape(assignee)}[/bold]" if assignee else ""),
              highlight=False)  # fmt: skip
    for r in ratings["items"]:
        extra = f": {escape(r['comment'])}" if r.get("comment") else ""
        out.print(f"  {r['score']:>4} by {escape(r['identity'])}{extra}", highlight=False)
    if not items:
        out.print("no comments yet")
        return
    table = Table("when", "author", "kind", Column("text", overflow="fold"))
    table.columns.insert(0, Column("#", no_wrap=True))
    for c in items:
        kind = f"handoff -> {c['to']}" if c["kind"] == "handoff" else c["kind"]
        table.add_row(str(c["id"]), c["created_at"][:19], escape(c["author"]), escape(kind),
                      escape(c["body"]))  # fmt: skip
    out.print(table)
    if token:
        out.print(f"(more: raise --limit above {limit})")


def handoffs(
    to: str = typer.Option("me", "--to", help="'me' or an identity"),
    current: bool = typer.Option(False, "--current", help="only runs still assigned"),
    limit: int = typer.Option(50, "--limit", "-n"),
) -> None:
    """List runs handed over to you (or to --to WHO), newest first."""
    res = Gateway().get("/v1/handoffs", params={"to": to, "current": current, "page_size": limit})
    if not res["items"]:
        out.print(f"nothing was handed to {res['to']}", highlight=False)
        return
    table = Table(Column("when", no_wrap=True), "from", "current", Column("note", overflow="fold"))
    table.columns.insert(0, Column("run", no_wrap=True))
    for h in res["items"]:
        table.add_row(h["run_id"], h["created_at"][:16].replace("T", " "), escape(h["author"]),
                      "yes" if h["current"] else "no", escape(h["body"]))  # fmt: skip
    out.print(table)


def mentions(
    to: str = typer.Option("me", "--to", help="'me' or an identity"),
    limit: int = typer.Option(50, "--limit", "-n"),
) -> None:
    """List comments that @mention you (or --to WHO), newest first."""
    res = Gateway().get("/v1/mentions", params={"to": to, "page_size": limit})
    if not res["items"]:
        out.print(f"nobody mentioned {res['to']}", highlight=False)
        return
    table = Table(Column("when", no_wrap=True), "from", Column("comment", overflow="fold"))
    table.columns.insert(0, Column("run", no_wrap=True))
    for c in res["items"]:
        table.add_row(c["run_id"], c["created_at"][:16].replace("T", " "), escape(c["author"]),
                      escape(c["body"]))  # fmt: skip
    out.print(table)


def ratings(
    definition: str | None = typer.Option(None, "--definition", "-d"),
    identity: str | None = typer.Option(None, "--by", help="only this identity's ratings"),
    limit: int = typer.Option(20, "--limit", "-n"),
) -> None:
    """Ratings across runs (of one definition, by one person), newest first, with totals."""
    params: dict[str, Any] = {"limit": limit}
    if definition:
        params["definition_id"] = definition
    if identity:
        params["identity"] = identity
    res = Gateway().get("/v1/ratings", params=params)
    s = res["summary"]
    out.print(f"up {s['up']}  down {s['down']}  ({res['total']} ratings)", highlight=False)
    table = Table(Column("run", no_wrap=True), "definition", "score", "by", "when",
                  Column("comment", overflow="fold"))  # fmt: skip
    for r in res["items"]:
        table.add_row(r["run_id"], r.get("definition_id") or "", r["score"], escape(r["identity"]),
                      r["updated_at"][:16].replace("T", " "), escape(r.get("comment") or ""))  # fmt: skip
    if res["items"]:
        out.print(table)
