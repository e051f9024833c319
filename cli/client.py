"""The CLI's HTTP client for the gateway, and how it reports gateway errors.

Every command goes through the gateway (never straight to Temporal), so the CLI
sees exactly what any other API user sees. A 4xx/5xx prints the gateway's `detail`
and exits non-zero.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:  # imported when a command runs, not at start-up (`duratask --help`)
    from rich.console import Console

    from duratask.settings import Settings

DEV_TOKEN_FILE = Path(".duratask") / "dev-token"  # duratask.settings.STATE_DIR
# Set by the global `--url` option (or DURATASK_URL); else DURATASK_PUBLIC_URL/HOST/PORT.
GATEWAY_URL: str | None = None


def token(settings: Settings) -> str | None:
    if settings.token:
        return settings.token.get_secret_value()
    if DEV_TOKEN_FILE.exists():
        return DEV_TOKEN_FILE.read_text().strip() or None
    return None


@cache
def err() -> Console:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)  # messages stay whole (cli/output.py)


def die(message: str, code: int = 1) -> NoReturn:
    err().print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def parse_json(text: str, what: str) -> Any:
    """`text` as JSON, or a usage error (exit 2) naming `what` and the parse error."""
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        die(f"{what} is not valid JSON: {e}", 2)


class Gateway:
    def __init__(self, settings: Settings | None = None, url: str | None = None) -> None:
        import httpx

        from duratask.settings import get_settings

        self.settings = settings or get_settings()
        self.url = (url or GATEWAY_URL or self.settings.gateway_url()).rstrip("/")
        headers = {}
        tok = token(self.settings)
        if tok:
            headers["Authorization"] = f"Bearer {tok}"
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=330)

    def request(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        try:
            resp = self.http.request(method, path, **kw)
        except httpx.ConnectError:
            die(f"cannot reach the gateway at {self.url}: is `duratask dev` running?")
        except httpx.HTTPError as e:
            die(f"request to {self.url}{path} failed: {e}")
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("detail", resp.text)
            except ValueError:
                detail = resp.text
            die(f"{resp.status_code}: {detail}", code=2 if resp.status_code < 500 else 1)
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw)


def read_file(path: Path) -> tuple[bytes, str]:
    if not path.exists():
        die(f"no such file: {path}")
    kind = "application/json" if path.suffix == ".json" else "application/yaml"
    return path.read_bytes(), kind
