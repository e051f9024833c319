"""`duratask def ...`: apply, list, show, validate, delete definitions."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from cli.client import Gateway, die, read_file
from cli.output import console

app = typer.Typer(help="Task definitions.", no_args_is_help=True, rich_markup_mode=None)
out = console()


def _id_of(body: bytes, kind: str, path: Path) -> str:
    import yaml

    data = json.loads(body) if kind == "application/json" else yaml.safe_load(body)
    if not isinstance(data, dict) or not data.get("id"):
        die(f"{path}: a definition needs an 'id'")
    return str(data["id"])


@app.command("apply")
def apply(
    file: list[Path] = typer.Option(..., "-f", "--file", help="YAML/JSON definition file(s)"),
) -> None:
    """Create or update definitions from files (a new version when changed)."""
    gw = Gateway()
    for path in file:
        body, kind = read_file(path)
        def_id = _id_of(body, kind, path)
        res = gw.request(
            "PUT", f"/v1/definitions/{def_id}", content=body, headers={"content-type": kind}
        )
        out.print(f"[green]applied[/green] {def_id} version {res['version']}")


@app.command("validate")
def validate(file: Path = typer.Argument(..., help="YAML/JSON definition file")) -> None:
    """Check a definition without saving it."""
    body, kind = read_file(file)
    res = Gateway().post("/v1/definitions/validate", content=body, headers={"content-type": kind})
    out.print(f"[green]valid[/green] {res['id']}")


@app.command("list")
def list_() -> None:
    """List definitions."""
    res = Gateway().get("/v1/definitions")
    table = Table("id", "name", "version", "steps", "updated")
    for item in res["items"]:
        d = item["definition"]
        table.add_row(d["id"], d.get("name") or "", str(item["version"]), str(len(d["steps"])),
                      item["created_at"][:19])  # fmt: skip
    out.print(table)


@app.command("show")
def show(
    definition_id: str,
    version: int | None = typer.Option(None, "--version", "-v"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show a definition (latest, or one version)."""
    path = f"/v1/definitions/{definition_id}" + (f"/versions/{version}" if version else "")
    res = Gateway().get(path)
    if as_json:
        out.print_json(data=res)
    else:
        out.print(f"# {definition_id} version {res['version']} (latest {res['latest_version']})")
        import yaml

        out.print(yaml.safe_dump(res["definition"], sort_keys=False))


@app.command("delete")
def delete(definition_id: str) -> None:
    """Delete a definition (running runs keep their pinned copy)."""
    Gateway().request("DELETE", f"/v1/definitions/{definition_id}")
    out.print(f"deleted {definition_id}")
