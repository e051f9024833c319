"""Encrypted payloads end to end on the dev server: the gateway, worker and CLI seal
payloads; the history read without the codec (raw SDK client, `temporal workflow show`)
holds only ciphertext; the gateway's codec server opens it for a token-holder (also for
the real `temporal` CLI through `--codec-endpoint`), and answers 401 without a token.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import Payloads
from temporalio.testing import WorkflowEnvironment

from duratask.codec import ENCODING, new_key
from duratask.settings import ApiKey
from tests.stack import Stack, run_gateway, stack_settings
from worker.client import connect
from worker.main import build_worker

MARKER = "zebra-quartz-7781"  # appears in the input, the prompt and the model's answer
READER, WRITER = "reader-token-0123456789", "writer-token-0123456789"
KEYS = [("k2", new_key()), ("k1", new_key())]


def keyring(*keys: tuple[str, str]) -> SecretStr:
    return SecretStr(",".join(f"{i}:{k}" for i, k in keys))


@contextlib.asynccontextmanager
async def encrypted_stack(
    env: WorkflowEnvironment, task_queue: str, tmp: Path, keys: SecretStr
) -> AsyncIterator[Stack]:
    settings = stack_settings(
        env,
        task_queue,
        tmp,
        encryption_keys=keys,
        api_keys=[
            ApiKey(key=SecretStr(READER), identity="reader", scopes=["tasks:read"]),
            ApiKey(key=SecretStr(WRITER), identity="writer", scopes=["tasks:read", "tasks:write"]),
        ],
    )
    client = await connect(settings)
    async with (
        build_worker(client, settings, task_queue),
        run_gateway(settings) as url,
        httpx.AsyncClient(
            base_url=url, timeout=60, headers={"Authorization": f"Bearer {WRITER}"}
        ) as http,
    ):
        yield Stack(url, http, client, settings, task_queue)


async def run_once(s: Stack) -> str:
    await s.put_definition(
        {
            "id": "secret-echo",
            "inputs": {"word": {"type": "string", "required": True}},
            "model": {"provider": "scripted", "name": "echo"},
            "steps": [{"id": "say", "action": "llm_call", "prompt": "Repeat {{ input.word }}"}],
        }
    )
    run = await s.start("secret-echo", input={"word": MARKER})
    done = await s.wait_result(run["run_id"])
    assert done["status"] == "completed", done
    assert MARKER in json.dumps(done)  # the gateway reads it in clear (it has the key)
    return str(run["run_id"])


def encrypted_payloads(history: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            if "metadata" in v and "data" in v:
                found.append(v)
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(history)
    return found


def readable(doc: Any) -> str:
    """Every string in a history, plus each one base64-decoded (payload data is base64 in
    JSON, so a clear prompt would hide from a plain substring search)."""
    out: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str):
            out.append(v)
            with contextlib.suppress(ValueError):
                out.append(base64.b64decode(v, validate=True).decode("utf-8", "replace"))

    walk(doc)
    return "\n".join(out)


def temporal_show(env: WorkflowEnvironment, run_id: str, *codec: str) -> str:
    address = env.client.service_client.config.target_host
    cmd = [shutil.which("temporal") or "temporal", "workflow", "show", "-w", run_id]
    cmd += ["--address", address, "--output", "json", *codec]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_history_holds_only_ciphertext_and_the_codec_server_opens_it(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with encrypted_stack(dev_env, task_queue, tmp_path, keyring(*KEYS)) as s:
        run_id = await run_once(s)

        # the run's event stream (signals and updates, sealed too) reads in clear here
        events = await s.http.get(
            f"/v1/runs/{run_id}/events", headers={"Accept": "application/json"}
        )
        assert events.status_code == 200 and "run.completed" in events.text

        # a client without the codec (the dev env's) sees sealed payloads only
        raw = await dev_env.client.get_workflow_handle(run_id).fetch_history()
        history = json.loads(raw.to_json())
        assert MARKER not in readable(history)
        sealed = [
            p
            for p in encrypted_payloads(history)
            if base64.b64decode(p["metadata"].get("encoding", "")) == ENCODING
        ]
        assert sealed, "no encrypted payload in the history"
        key_ids = {base64.b64decode(p["metadata"]["encryption-key-id"]) for p in sealed}
        assert key_ids == {b"k2"}  # the first key seals
        # ... and so does the temporal CLI
        shown = await _in_thread(temporal_show, dev_env, run_id)
        assert MARKER not in readable(json.loads(shown)) and run_id in shown

        # the codec server, per Temporal's contract
        body = json_format.MessageToJson(
            Payloads(payloads=[json_format.ParseDict(p, Payloads().payloads.add()) for p in sealed])
        )
        anon = await s.http.post("/codec/decode", content=body, headers={"Authorization": ""})
        assert anon.status_code == 401, anon.text
        bad = await s.http.post(
            "/codec/decode", content=body, headers={"Authorization": "Bearer nope"}
        )
        assert bad.status_code == 401
        ok = await s.http.post(
            "/codec/decode",
            content=body,
            headers={"Authorization": f"Bearer {READER}", "X-Namespace": "default"},
        )
        assert ok.status_code == 200, ok.text
        opened = ok.json()["payloads"]
        assert len(opened) == len(sealed)
        assert MARKER in "".join(base64.b64decode(p["data"]).decode() for p in opened)
        # encoding mints ciphertext the workers accept: writers only
        clear = json.dumps({"payloads": opened})
        denied = await s.http.post(
            "/codec/encode", content=clear, headers={"Authorization": f"Bearer {READER}"}
        )
        assert denied.status_code == 403
        enc = await s.http.post("/codec/encode", content=clear)
        assert enc.status_code == 200 and MARKER not in enc.text
        assert (await s.http.post("/codec/decode", content=enc.text)).json()["payloads"] == opened
        garbage = await s.http.post("/codec/decode", content="{not json")
        assert garbage.status_code == 400 and "payloads" in garbage.json()["detail"]

        # CORS for the Web UI's origin only
        pre = await s.http.options(
            "/codec/decode",
            headers={
                "Origin": "http://127.0.0.1:8233",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
            },
        )
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "http://127.0.0.1:8233"
        other = await s.http.options(
            "/codec/decode",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in other.headers

        # the real temporal CLI reads it through the codec server with a token
        shown = await _in_thread(
            temporal_show,
            dev_env,
            run_id,
            "--codec-endpoint",
            f"{s.url}/codec",
            "--codec-auth",
            f"Bearer {READER}",
        )
        payloads = encrypted_payloads(json.loads(shown))
        assert payloads
        texts = [base64.b64decode(p.get("data", "")).decode("utf-8", "replace") for p in payloads]
        assert any(MARKER in t for t in texts)
        assert all(
            base64.b64decode(p["metadata"].get("encoding", "")) != ENCODING for p in payloads
        )


async def test_payloads_sealed_with_an_old_key_still_open_after_rotation(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    old, new = ("old", new_key()), ("new", new_key())
    async with encrypted_stack(dev_env, task_queue, tmp_path, keyring(old)) as s:
        run_id = await run_once(s)
    # rotate: a new first key, the old one kept for reading
    async with encrypted_stack(dev_env, task_queue, tmp_path, keyring(new, old)) as s:
        got = await s.http.get(f"/v1/runs/{run_id}")
        assert got.status_code == 200 and MARKER in got.text
        history = json.loads(
            (await dev_env.client.get_workflow_handle(run_id).fetch_history()).to_json()
        )
        body = json.dumps({"payloads": encrypted_payloads(history)[:3]})
        ok = await s.http.post("/codec/decode", content=body)
        assert ok.status_code == 200 and MARKER in str(
            [base64.b64decode(p["data"]) for p in ok.json()["payloads"]]
        )
        second = await run_once(s)
        raw = json.loads(
            (await dev_env.client.get_workflow_handle(second).fetch_history()).to_json()
        )
        ids = {
            base64.b64decode(p["metadata"]["encryption-key-id"])
            for p in encrypted_payloads(raw)
            if "encryption-key-id" in p["metadata"]
        }
        assert ids == {b"new"}
    # without the old key, its payloads no longer open: the codec says which key is missing
    async with encrypted_stack(dev_env, task_queue, tmp_path, keyring(new)) as s:
        r = await s.http.post("/codec/decode", content=body)
        assert r.status_code == 422 and "'old'" in r.json()["detail"]


async def test_codec_is_404_when_encryption_is_off(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    settings = stack_settings(dev_env, task_queue, tmp_path)
    async with run_gateway(settings) as url, httpx.AsyncClient(base_url=url) as http:
        r = await http.post("/codec/decode", json={"payloads": []})
        assert r.status_code == 404 and "DURATASK_ENCRYPTION_KEYS" in r.json()["detail"]


async def _in_thread(fn: Any, *args: Any) -> Any:
    import asyncio

    return await asyncio.to_thread(fn, *args)


pytestmark = pytest.mark.timeout(240)


async def test_duratask_dev_points_the_web_ui_at_the_codec_server(tmp_path: Path) -> None:
    """`duratask dev` with keys: the dev server's Web UI is told the gateway's codec URL
    (read back from the UI's own settings API)."""
    import asyncio
    import signal
    import time

    from cli.devstack import dev_codec, temporal_command
    from duratask.settings import Settings
    from tests.stack import free_port

    settings = Settings(encryption_keys=keyring(KEYS[0]), _env_file=None)  # type: ignore[call-arg]
    dev_settings, endpoint = dev_codec(settings, "127.0.0.1", 18400)
    assert endpoint is not None and dev_settings.codec_ui_secret is not None
    assert endpoint.endswith(dev_settings.codec_ui_secret.get_secret_value())
    assert dev_codec(Settings(_env_file=None), "127.0.0.1", 1)[1] is None  # type: ignore[call-arg]

    port, ui_port = free_port(), free_port()
    cmd = temporal_command(port, ui_port, True, tmp_path / "t.db", endpoint)
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as http:
            while True:
                try:
                    r = await http.get(f"http://127.0.0.1:{ui_port}/api/v1/settings")
                    if r.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the dev Web UI did not come up"
                await asyncio.sleep(0.3)
        assert r.json()["Codec"]["Endpoint"] == endpoint
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)


async def test_the_ui_path_secret_stands_in_for_a_token_and_stays_out_of_logs(
    dev_env: WorkflowEnvironment,
    task_queue: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = "ui-secret-abcdefghijklmnop"
    settings = stack_settings(
        dev_env,
        task_queue,
        tmp_path,
        encryption_keys=keyring(KEYS[0]),
        codec_ui_secret=SecretStr(secret),
        api_keys=[ApiKey(key=SecretStr(READER), identity="reader", scopes=["tasks:read"])],
    )
    clear = {"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "IjEi"}]}
    async with run_gateway(settings) as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.post("/codec/decode", json=clear)).status_code == 401
        wrong = await http.post("/codec/ui/not-it/decode", json=clear)
        assert wrong.status_code == 404
        sealed = await http.post(f"/codec/ui/{secret}/encode", json=clear)
        assert sealed.status_code == 200, sealed.text
        opened = await http.post(f"/codec/ui/{secret}/decode", content=sealed.text)
        assert opened.status_code == 200 and opened.json() == clear
    logged = capsys.readouterr()
    assert "/codec/ui/{secret}/decode" in logged.out + logged.err  # the request was logged
    assert secret not in logged.out + logged.err
