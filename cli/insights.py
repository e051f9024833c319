"""`duratask stats`, `duratask run compare`, `duratask def health`, `duratask regressions`.

Tables over the gateway's insights endpoints (docs/insights.md).
"""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.client import Gateway
from cli.output import console

out = console()
HEALTH_STYLE = {"healthy": "green", "warning": "yellow", "regression": "red"}
STATUS_STYLE = {"completed": "green", "failed": "red", "cancelled": "yellow", "running": "cyan"}


def _n(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{round(value):,}{unit}" if isinstance(value, int | float) else str(value)


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _signed(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    text = f"{value:+.{digits}f}" if digits else f"{round(value):+,}"
    return f"[red]{text}[/]" if value > 0 else f"[green]{text}[/]" if value < 0 else text


def stats(
    owner: str | None = typer.Option(None, "--owner", "-o", help="the runs of this owner"),
    definition: str | None = typer.Option(None, "--definition", "-d", help="of this definition"),
    window: str | None = typer.Option(None, "--window", "-w", help="e.g. 24h, 7d (default 7d)"),
    since: str | None = typer.Option(None, "--since", help="ISO 8601 time instead of --window"),
    max_runs: int | None = typer.Option(None, "--max-runs", help="scan at most this many runs"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run stats: by status, success rate, durations, tokens, cost, proactive vs manual."""
    params = {k: v for k, v in (("owner", owner), ("definition_id", definition),
              ("window", window), ("since", since), ("max_runs", max_runs)) if v}  # fmt: skip
    s = Gateway().get("/v1/stats", params=params)
    if as_json:
        out.print_json(data=s)
        return
    who = " ".join(f"{k}={v}" for k, v in (("owner", owner), ("definition", definition)) if v)
    out.print(f"[bold]runs {who or 'all'}[/bold] since {s['since'][:19]}Z", highlight=False)
    table = Table("measure", "value", show_header=False)
    rate = s["success_rate"]
    table.add_row("runs", f"{s['total']} ({s['finished']} ended)")
    table.add_row("by status", ", ".join(
        f"[{STATUS_STYLE.get(k, 'white')}]{k}[/] {v}" for k, v in sorted(s["by_status"].items())))  # fmt: skip
    table.add_row("success rate", "-" if rate is None else f"{rate * 100:.1f}%")
    d = s["duration_ms"]
    table.add_row("duration p50 / p95", f"{_n(d['p50'], unit=' ms')} / {_n(d['p95'], unit=' ms')}")
    estimated = s.get("usage_estimated_runs") or 0
    mark = f", {estimated} run(s) estimated" if estimated else ""
    table.add_row(
        "tokens", f"{_n(s['tokens']['total'])} (avg {_n(s['tokens']['avg_per_run'])}{mark})"
    )
    table.add_row("cost", f"${s['cost_usd']['total']:.4f}")
    t = s["triggers"]
    table.add_row("proactive / manual / other", f"{t['proactive']} / {t['manual']} / {t['other']}")
    for definition_id, count in sorted(s["by_definition"].items()):
        table.add_row(f"  {escape(definition_id)}", str(count))
    out.print(table)
    for note in s["notes"]:
        out.print(f"[yellow]note:[/yellow] {escape(note)}")


def compare(
    run_a: str = typer.Argument(..., help="the reference run"),
    run_b: str = typer.Argument(..., help="the run compared with it (deltas are b - a)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Compare two runs: totals side by side and step-level deltas."""
    c = Gateway().get("/v1/runs/compare", params={"a": run_a, "b": run_b})
    if as_json:
        out.print_json(data=c)
        return
    a, b, d = c["a"], c["b"], c["delta"]
    top = Table("", escape(a["run_id"]), escape(b["run_id"]), "delta")
    status = lambda s: f"[{STATUS_STYLE.get(s['status'], 'white')}]{s['status']}[/]"  # noqa: E731
    top.add_row("definition", f"{a['definition_id']} v{a['definition_version']}",
                f"{b['definition_id']} v{b['definition_version']}", "")  # fmt: skip
    top.add_row("status", status(a), status(b), "")
    top.add_row("duration ms", _n(a["duration_ms"]), _n(b["duration_ms"]),
                _signed(d["duration_ms"]))  # fmt: skip
    top.add_row("tokens", _n(a["tokens"]), _n(b["tokens"]), _signed(d["tokens"]))
    top.add_row("cost $", f"{a['cost_usd']:.6f}", f"{b['cost_usd']:.6f}", _signed(d["cost_usd"], 6))
    top.add_row("steps run", str(a["step_count"]), str(b["step_count"]), _signed(d["step_count"]))
    out.print(top)
    steps = Table("step", "status a -> b", "duration ms", "tokens", "output")
    for s in c["steps"]:
        sa, sb = s["a"], s["b"]
        changed = {True: "[yellow]changed[/]", False: "same", None: "not yet"}[s["output_changed"]]
        steps.add_row(escape(s["step_id"]),
                      f"{sa['status'] if sa else '-'} -> {sb['status'] if sb else '-'}",
                      _signed(s["duration_ms"]), _signed(s["tokens"]), changed)  # fmt: skip
    out.print(steps)
    for note in c["notes"]:
        out.print(f"[yellow]note:[/yellow] {escape(note)}")


def _health_table(items: list[dict[str, Any]]) -> Table:
    table = Table("definition", "health", "metric", "baseline", "recent", "change", "threshold")
    for h in items:
        style = HEALTH_STYLE[h["status"]]
        reasons = h["reasons"] or [None]
        for i, r in enumerate(reasons):
            name = escape(h["definition_id"]) if i == 0 else ""
            verdict = f"[{style}]{h['status']}[/]" if i == 0 else ""
            if r is None:
                table.add_row(name, verdict, "-", "", "", "", "")
                continue
            pct = "" if r["change_pct"] is None else f"+{r['change_pct']:.0f}%"
            limit = f"{r['threshold']:g}" + ("" if r["metric"] == "consecutive_failures" else "%")
            table.add_row(name, verdict, f"[{HEALTH_STYLE[r['level']]}]{r['metric']}[/]",
                          _g(r["baseline"]), _g(r["recent"]), pct, limit)  # fmt: skip
    return table


def health(definition_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """A definition's health: its latest runs against the baseline before them."""
    h = Gateway().get(f"/v1/definitions/{definition_id}/health")
    if as_json:
        out.print_json(data=h)
        return
    out.print(_health_table([h]))
    out.print(f"recent runs: {len(h['recent_runs'])}, baseline runs: {h['baseline_runs']}, "
              f"failures in a row: {h['consecutive_failures']}", highlight=False)  # fmt: skip
    for r in h["reasons"]:
        out.print(f"- {escape(r['message'])}", highlight=False)
    for note in h["notes"]:
        out.print(f"[yellow]note:[/yellow] {escape(note)}")


def regressions(
    limit: int | None = typer.Option(None, "--limit", help="check at most this many definitions"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Definitions whose health is `warning` or `regression`, worst first."""
    res = Gateway().get("/v1/health/regressions", params={"limit": limit} if limit else {})
    if as_json:
        out.print_json(data=res)
        return
    if not res["items"]:
        out.print(f"[green]all {res['checked']} definition(s) healthy[/green]")
    else:
        out.print(_health_table(res["items"]))
    if res["capped"]:
        out.print(f"[yellow]note:[/yellow] checked {res['checked']} of "
                  f"{res['total_definitions']} definitions")  # fmt: skip
