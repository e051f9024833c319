"""The `duratask` command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from cli import approvals, client, collab, defs, governance, runs
from cli import audit as audit_cli
from cli import mcp as mcp_cli
from cli import schedules as schedules_cli
from cli.client import die
from cli.insights import compare, health, regressions, stats

app = typer.Typer(
    help="duratask: durable AI-agent tasks on Temporal.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # plain help and usage errors: Typer's rich help imports ~0.25 s of markdown/rich
    # modules, more than the rest of start-up (and rich wraps errors at the terminal width)
    rich_markup_mode=None,
)
app.add_typer(defs.app, name="def")


@app.callback()
def _options(
    url: str | None = typer.Option(
        None, "--url", envvar="DURATASK_URL", help="gateway URL (default http://HOST:PORT)"
    ),
) -> None:
    """duratask: durable AI-agent tasks on Temporal."""
    if url:
        client.GATEWAY_URL = url


app.add_typer(runs.app, name="run")
runs.app.command("approve")(approvals.approve)
runs.app.command("reject")(approvals.reject)
app.command("approvals")(approvals.list_approvals)
runs.app.command("rate")(collab.rate)
runs.app.command("comment")(collab.comment)
runs.app.command("comments")(collab.comments)
app.command("handoffs")(collab.handoffs)
app.command("mentions")(collab.mentions)
app.command("ratings")(collab.ratings)
app.add_typer(schedules_cli.app, name="schedule")
app.command("stats")(stats)
app.command("audit")(audit_cli.audit)
app.command("regressions")(regressions)
runs.app.command("compare")(compare)
defs.app.command("health")(health)
runs.app.command("input")(governance.submit_input)  # docs/runs.md#human-input
runs.app.command("budget")(governance.raise_budget)  # docs/models-and-tools.md#budgets
runs.app.command("rerun")(governance.rerun)
defs.app.command("promote")(governance.promote)
app.command("mcp")(mcp_cli.mcp)  # duratask as an MCP server on stdio (docs/mcp.md)


@app.command()
def dev(
    temporal_address: str | None = typer.Option(
        None, "--temporal-address", help="use this Temporal (HOST:PORT) instead of starting one"
    ),
    port: int = typer.Option(8000, "--port", help="gateway port"),
    no_ui: bool = typer.Option(False, "--no-ui", help="do not serve the Temporal Web UI"),
    examples: Path = typer.Option(Path("examples"), "--examples", help="definitions to load"),
) -> None:
    """Run Temporal, the worker and the gateway together, locally."""
    import asyncio

    from cli.devstack import DevError, run_dev
    from duratask.settings import get_settings

    try:
        asyncio.run(run_dev(get_settings(), temporal_address, port, not no_ui, examples))
    except DevError as e:
        die(str(e))


@app.command()
def worker() -> None:
    """Run only the worker (for deployments with an external Temporal)."""
    from worker.main import main as worker_main

    worker_main()


@app.command("temporal-setup")
def temporal_setup(
    retention_hours: int = typer.Option(720, "--retention-hours", min=1, help="closed runs kept"),
) -> None:
    """Prepare the configured Temporal namespace: create it if missing, set retention,
    register duratask's search attributes (run once per cluster; idempotent)."""
    import asyncio

    from duratask.settings import get_settings
    from worker.client import connect
    from worker.namespace import prepare_namespace

    settings = get_settings()

    async def setup() -> list[str]:
        client = await connect(settings)
        return await prepare_namespace(client, settings.namespace, retention_hours)

    added = asyncio.run(setup())
    typer.echo(
        f"namespace {settings.namespace}: retention {retention_hours}h, "
        f"search attributes added: {', '.join(added) or 'none (all present)'}"
    )
    # The Temporal SDK's native runtime can abort the interpreter while it finalizes
    # (PyGILState_Release) after a short-lived client: the work is done, so leave now.
    sys.stdout.flush()
    os._exit(0)


@app.command()
def gateway(
    host: str | None = typer.Option(None, "--host"),
    port: int | None = typer.Option(None, "--port"),
    insecure: bool = typer.Option(
        False, "--insecure", help="serve with open auth on a non-loopback address (never do)"
    ),
) -> None:
    """Run only the gateway."""
    import uvicorn

    from api.app import create_app
    from api.auth import open_auth_warning, open_bind_refusal
    from duratask.logging import configure_logging, get_logger
    from duratask.settings import get_settings

    settings = get_settings()
    if insecure:
        settings = settings.model_copy(update={"insecure": True})
    configure_logging(settings.log_level, settings.log_json)
    from duratask.serving import GatewayServer

    bind = host or settings.host
    refusal = open_bind_refusal(settings, bind)
    if refusal:
        die(refusal)
    warning = open_auth_warning(settings)
    if warning:
        get_logger("duratask.gateway").warning(warning, host=bind)
    config = uvicorn.Config(create_app(settings), host=bind, port=port or settings.port)
    GatewayServer(config).run()  # ends live event streams on shutdown


def main() -> None:
    app()


if __name__ == "__main__":
    main()
