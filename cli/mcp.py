"""`duratask mcp`: duratask's MCP server on stdio, for IDEs and desktop assistants.

It talks to the gateway over HTTP with the CLI's token (`DURATASK_TOKEN` or the dev
token), so an MCP client may do exactly what that token may do. Nothing but MCP
messages may go to stdout: logs go to stderr.
"""

from __future__ import annotations

import typer

from cli import client


def mcp(
    url: str | None = typer.Option(None, "--url", help="The gateway (default: settings)"),
) -> None:
    """Serve duratask's tools over MCP on stdin/stdout (start runs, follow them,
    approve, schedule), through the gateway with this CLI's token."""
    from api.mcp_server import build_server, gateway_client
    from duratask.settings import get_settings

    settings = get_settings()
    base = (url or client.GATEWAY_URL or settings.gateway_url()).rstrip("/")
    server = build_server(gateway_client(base, client.token(settings)))
    server.run("stdio")
