"""`duratask schedule ...`: create, list, show, pause, resume, trigger, backfill, delete,
and `sync` a directory of job files.

Job files are YAML (one job per file) and the directory is the source of truth for
the schedules sync created: a new file creates a schedule, a changed file updates it,
a removed file deletes it. Schedules created any other way are never touched. A job
names a definition, or carries an inline `prompt` (+ `model`), which sync saves as the
definition `job-<name>` (a new version when the prompt changes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.client import Gateway, die
from cli.output import console
from cli.runs import STATUS_STYLE, parse_inputs
from duratask.schedules.ids import slugify

app = typer.Typer(
    help="Schedules: cron jobs, intervals, one-time runs.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
out = console()

SPEC_KEYS = ("cron", "every", "text", "at")
COMPARED = (
    "definition_id", "version", "input", "priority", "owner", "team", "timezone", "overlap",
    "jitter", "start_at", "end_at", "description", "pause_on_failure",
)  # fmt: skip
# compared only when a job file names them: by default the schedule is the syncing
# identity's (the gateway sets it), which a job file need not repeat
OWNERSHIP = ("owner", "team")
DEFAULTS: dict[str, Any] = {
    "version": None, "input": {}, "priority": "normal", "owner": None, "team": None,
    "timezone": "UTC",
    "overlap": "skip", "jitter": None, "start_at": None, "end_at": None, "description": None,
    "pause_on_failure": False,
}  # fmt: skip
JOB_KEYS = {
    *SPEC_KEYS, *COMPARED, "name", "schedule", "definition", "prompt", "model", "system",
    "tools", "paused",
}  # fmt: skip


# ---------------------------------------------------------------- job files


@dataclass
class Job:
    path: Path
    schedule_id: str
    body: dict[str, Any]  # the POST /v1/schedules body (without id)
    paused: bool = False
    definition: dict[str, Any] | None = None  # inline prompt: the definition to save


def _model(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return value
    provider, _, name = str(value).partition("/")
    return {"provider": provider, "name": name} if name else {"name": provider}


def load_job(path: Path) -> Job:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict) or not data.get("name"):
        raise ValueError(f"{path}: a job needs a 'name'")
    unknown = set(data) - JOB_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    slug = slugify(str(data["name"]))
    body: dict[str, Any] = {k: data[k] for k in COMPARED if k in data}
    spec = {k: str(data[k]) for k in SPEC_KEYS if data.get(k) is not None}
    if data.get("schedule") is not None:
        text = str(data["schedule"])
        from croniter import croniter

        spec["cron" if croniter.is_valid(text) and len(text.split()) == 5 else "text"] = text
    if len(spec) != 1:
        raise ValueError(f"{path}: give exactly one of schedule / cron / every / text / at")
    body.update(spec)
    body.setdefault("description", str(data["name"]))
    definition: dict[str, Any] | None = None
    if data.get("prompt"):
        if data.get("definition"):
            raise ValueError(f"{path}: give a 'definition' or a 'prompt', not both")
        step: dict[str, Any] = {"id": "run", "action": "llm_call", "prompt": str(data["prompt"])}
        if data.get("system"):
            step["system"] = str(data["system"])
        inline: dict[str, Any] = {
            "id": f"job-{slug}"[:63].rstrip("-"),
            "name": str(data["name"]),
            "description": f"inline prompt of job file {path.name}",
            "tools": list(data.get("tools") or []),
            "steps": [step],
        }
        if data.get("model"):
            inline["model"] = _model(data["model"])
        body["definition_id"] = inline["id"]
        definition = inline
    elif data.get("definition"):
        body["definition_id"] = str(data["definition"])
    else:
        raise ValueError(f"{path}: a job needs a 'definition' or a 'prompt'")
    return Job(path, f"sched-{slug}", body, bool(data.get("paused", False)), definition)


def load_jobs(folder: Path) -> list[Job]:
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a directory")
    jobs = [load_job(p) for p in sorted(folder.glob("*.y*ml"))]
    seen: dict[str, Path] = {}
    for job in jobs:
        if job.schedule_id in seen:
            raise ValueError(
                f"{job.path} and {seen[job.schedule_id]} both define {job.schedule_id}"
            )
        seen[job.schedule_id] = job.path
    return jobs


# ---------------------------------------------------------------- sync


@dataclass
class Plan:
    create: list[Job] = field(default_factory=list)
    update: list[tuple[Job, list[str]]] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"create {j.schedule_id} ({j.path.name})" for j in self.create]
        out += [f"update {j.schedule_id}: {', '.join(c)}" for j, c in self.update]
        out += [f"delete {sid}" for sid in self.delete]
        out += [f"skip   {c}" for c in self.conflicts]
        return out


def _current(view: dict[str, Any]) -> dict[str, Any]:
    cur = {k: view.get(k) for k in COMPARED}
    cur.update({k: view["spec"][k] for k in SPEC_KEYS if view["spec"].get(k) is not None})
    return cur


def _changes(job: Job, view: dict[str, Any]) -> list[str]:
    want = {**DEFAULTS, **job.body}
    have = _current(view)
    for key in OWNERSHIP:
        if job.body.get(key) is None:
            want[key] = have.get(key)
    keys = set(COMPARED) | {k for k in SPEC_KEYS if k in want or k in have}
    changed = sorted(k for k in keys if want.get(k) != have.get(k))
    if job.paused != view["paused"] and not view.get("paused_by_switch"):
        changed.append("paused")
    return changed


def plan_sync(jobs: list[Job], views: list[dict[str, Any]]) -> Plan:
    plan = Plan()
    by_id = {v["id"]: v for v in views}
    wanted = {j.schedule_id for j in jobs}
    for job in jobs:
        view = by_id.get(job.schedule_id)
        if view is None:
            plan.create.append(job)
        elif view["source"] != "sync":
            plan.conflicts.append(f"{job.schedule_id}: exists and was not created by sync")
        elif changes := _changes(job, view):
            plan.update.append((job, changes))
        else:
            plan.unchanged.append(job.schedule_id)
    plan.delete = [v["id"] for v in views if v["source"] == "sync" and v["id"] not in wanted]
    return plan


def _save_definition(gw: Gateway, job: Job) -> None:
    if job.definition is not None:
        gw.request("PUT", f"/v1/definitions/{job.definition['id']}", json=job.definition)


def apply_plan(gw: Gateway, plan: Plan) -> None:
    for job in plan.create:
        _save_definition(gw, job)
        body = {**job.body, "id": job.schedule_id, "paused": job.paused}
        gw.post("/v1/schedules", params={"source": "sync"}, json=body)
    for job, changes in plan.update:
        _save_definition(gw, job)
        fields = {**DEFAULTS, **job.body}
        patch = {k: fields.get(k) for k in changes if k != "paused"}
        if any(k in SPEC_KEYS for k in changes):
            patch.update({k: job.body[k] for k in SPEC_KEYS if k in job.body})
        if patch:
            gw.request("PATCH", f"/v1/schedules/{job.schedule_id}", json=patch)
        if "paused" in changes:
            action = "pause" if job.paused else "unpause"
            gw.post(f"/v1/schedules/{job.schedule_id}/{action}", json={"note": "job file"})
    for sid in plan.delete:
        gw.request("DELETE", f"/v1/schedules/{sid}")


def sync_dir(gw: Gateway, folder: Path, dry_run: bool = False) -> Plan:
    """Make the sync-created schedules match the job files in `folder`."""
    jobs = load_jobs(folder)
    views = gw.get("/v1/schedules")["items"]
    plan = plan_sync(jobs, views)
    if not dry_run:
        apply_plan(gw, plan)
    return plan


# ---------------------------------------------------------------- commands


@app.command("create")
def create(
    definition_id: str = typer.Argument(..., help="the definition to run"),
    cron: str | None = typer.Option(None, "--cron", help="5-field cron, 0 = Sunday"),
    every: str | None = typer.Option(None, "--every", help="interval, e.g. 15m"),
    text: str | None = typer.Option(None, "--text", help="e.g. '8am daily'"),
    at: str | None = typer.Option(None, "--at", help="one time, ISO 8601"),
    tz: str = typer.Option("UTC", "--tz", "--timezone", help="IANA time zone"),
    schedule_id: str | None = typer.Option(None, "--id", help="becomes sched-<id>"),
    description: str | None = typer.Option(None, "--description", "-d"),
    inputs: list[str] = typer.Option([], "--input", "-i", help="key=value (repeatable)"),
    version: int | None = typer.Option(None, "--version", help="pin a version"),
    priority: str = typer.Option("normal", "--priority"),
    owner: str | None = typer.Option(None, "--owner", help="another owner (needs tasks:admin)"),
    team: str | None = typer.Option(None, "--team", help="share with one of your groups"),
    overlap: str = typer.Option("skip", "--overlap"),
    jitter: str | None = typer.Option(None, "--jitter"),
    paused: bool = typer.Option(False, "--paused"),
    pause_on_failure: bool = typer.Option(False, "--pause-on-failure"),
) -> None:
    """Create a schedule (one of --cron, --every, --text, --at)."""
    body: dict[str, Any] = {
        "definition_id": definition_id, "cron": cron, "every": every, "text": text, "at": at,
        "timezone": tz, "id": schedule_id, "description": description,
        "input": parse_inputs(inputs), "version": version, "priority": priority,
        "owner": owner, "team": team, "overlap": overlap, "jitter": jitter, "paused": paused,
        "pause_on_failure": pause_on_failure,
    }  # fmt: skip
    view = Gateway().post("/v1/schedules", json={k: v for k, v in body.items() if v is not None})
    out.print(f"[green]created[/green] {view['id']}: {view['human']}")
    _print_next(view)


def _print_next(view: dict[str, Any]) -> None:
    if view["next_fire_times"]:
        out.print("next: " + ", ".join(t[:19].replace("T", " ") for t in view["next_fire_times"]))


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """List schedules."""
    res = Gateway().get("/v1/schedules")
    if as_json:
        out.print_json(data=res)
        return
    if not res["scheduling_enabled"]:
        out.print("[yellow]scheduling is disabled (PUT /v1/scheduling)[/yellow]")
    table = Table("id", "definition", "when", "next", "status", "source")
    for v in res["items"]:
        nxt = v["next_fire_times"][0][:19].replace("T", " ") if v["next_fire_times"] else ""
        table.add_row(v["id"], v["definition_id"], v["human"], nxt, v["status"], v["source"])
    out.print(table)


@app.command("show")
def show(schedule_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show a schedule: spec, next fire times, recent runs."""
    v = Gateway().get(f"/v1/schedules/{schedule_id}")
    if as_json:
        out.print_json(data=v)
        return
    out.print(f"[bold]{v['id']}[/bold]  {v['definition_id']}"
              f"{' v' + str(v['version']) if v['version'] else ' (latest)'}  {v['status']}")  # fmt: skip
    out.print(f"when: {v['human']}  " + escape(f"[{v['spec']['expression']}, {v['timezone']}]"))
    if v["note"]:
        out.print(f"note: {escape(v['note'])}")
    _print_next(v)
    table = Table("run", "scheduled", "status")
    for r in v["recent_runs"]:
        status = r["status"] or ""
        table.add_row(r["run_id"], (r["scheduled_at"] or "")[:19],
                      f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]")  # fmt: skip
    out.print(table)
    if v["last_result"] is not None:
        result = v["last_result"]
        out.print(f"last result: {result if isinstance(result, str) else json.dumps(result)}")
    if v["last_error"]:
        out.print(f"[red]last error:[/red] {v['last_error']}")


@app.command("pause")
def pause(schedule_id: str, note: str | None = typer.Option(None, "--note")) -> None:
    """Pause a schedule."""
    Gateway().post(f"/v1/schedules/{schedule_id}/pause", json={"note": note})
    out.print(f"paused {schedule_id}")


@app.command("resume")
def resume(schedule_id: str) -> None:
    """Resume (unpause) a schedule."""
    Gateway().post(f"/v1/schedules/{schedule_id}/unpause")
    out.print(f"resumed {schedule_id}")


@app.command("trigger")
def trigger(schedule_id: str) -> None:
    """Run a schedule's action now."""
    Gateway().post(f"/v1/schedules/{schedule_id}/trigger")
    out.print(f"triggered {schedule_id}")


@app.command("backfill")
def backfill(
    schedule_id: str,
    start: str = typer.Option(..., "--start", help="ISO 8601"),
    end: str = typer.Option(..., "--end", help="ISO 8601"),
) -> None:
    """Run every firing the schedule had between --start and --end."""
    Gateway().post(f"/v1/schedules/{schedule_id}/backfill", json={"start_at": start, "end_at": end})
    out.print(f"backfill of {schedule_id} requested")


@app.command("delete")
def delete(schedule_id: str) -> None:
    """Delete a schedule (runs already started keep going)."""
    Gateway().request("DELETE", f"/v1/schedules/{schedule_id}")
    out.print(f"deleted {schedule_id}")


@app.command("enable")
def enable() -> None:
    """Turn scheduling back on: resumes the schedules `disable` paused."""
    res = Gateway().request("PUT", "/v1/scheduling", json={"enabled": True})
    out.print(f"scheduling enabled; resumed: {', '.join(res['resumed']) or 'none'}")


@app.command("disable")
def disable() -> None:
    """Pause every duratask schedule (the global switch)."""
    res = Gateway().request("PUT", "/v1/scheduling", json={"enabled": False})
    out.print(f"scheduling disabled; paused: {', '.join(res['paused']) or 'none'}")


@app.command("sync")
def sync(
    folder: Path = typer.Argument(..., help="directory of YAML job files"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan, change nothing"),
) -> None:
    """Create, update and delete schedules so they match the job files in FOLDER."""
    try:
        plan = sync_dir(Gateway(), folder, dry_run)
    except ValueError as e:
        die(str(e))
    for line in plan.lines():
        out.print(("would " if dry_run else "") + line)
    if not plan.lines():
        out.print(f"up to date ({len(plan.unchanged)} jobs)")
