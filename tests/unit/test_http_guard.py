"""`http_request` against real loopback servers: one resolution per hop and a connection
to exactly that address, no non-global address, credentials and bodies kept from other
origins, one deadline for the whole request (issue 13's findings, each reproduced)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import uvicorn

from activities.tools.http import HttpRequestArgs, http_request, pin
from activities.tools.registry import ToolContext, ToolError
from duratask.serving import EmbeddedServer
from duratask.settings import Settings
from tests.fakes import http_server
from tests.fakes.http_server import serve_http
from tests.stack import free_port

LOOPBACK = ["127.0.0.1/32"]  # the test servers' network, allowed by name only


def settings(**kw: Any) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg]


def ctx(s: Settings, **services: Any) -> ToolContext:
    return ToolContext(run_id="r", step_id="s", idempotency_key="r/s/1/0", owner=None,
                       settings=s, services=services)  # fmt: skip


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with serve_http() as u:
        yield u


@pytest.fixture
async def other_url() -> AsyncIterator[str]:
    """A second server: another port is another origin."""
    async with serve_http() as u:
        yield u


async def test_dns_rebinding_cannot_reach_loopback(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The finding: the name was resolved for the check (public) and again by httpx to
    connect (loopback). The resolver here answers a public address first and loopback
    after, as a rebinding DNS server does."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def rebinding(host: Any, port: Any, *a: Any, **kw: Any) -> Any:
        if isinstance(host, bytes):  # anyio (httpx's connect) passes the name IDNA-encoded
            host = host.decode()
        if host != "rebind.example":
            return real(host, port, *a, **kw)
        asked.append(host)
        ip = "192.0.0.9" if len(asked) == 1 else "127.0.0.1"  # global first, loopback after
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, int(port)))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    port = url.rsplit(":", 1)[1]
    http_server.HITS.clear()
    args = HttpRequestArgs(url=f"http://rebind.example:{port}/echo", timeout_s=2)
    try:
        await http_request(args, ctx(settings(http_timeout_s=2)))
    except ToolError:
        pass  # 192.0.0.9 does not answer here; what matters is where it did not go
    assert http_server.HITS == [], "the request reached the loopback server"
    assert asked == ["rebind.example"], "resolved more than once"


async def test_an_injected_resolver_pins_the_connection(url: str) -> None:
    calls: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    port = url.rsplit(":", 1)[1]
    s = settings(http_allow_networks=LOOPBACK)
    got = await http_request(
        HttpRequestArgs(method="POST", url=f"http://api.test:{port}/echo", body={"a": 1}),
        ctx(s, resolver=resolver),
    )
    assert got["status"] == 200 and got["body"]["body"] == {"a": 1}
    assert got["body"]["headers"]["host"] == f"api.test:{port}"  # the name, not the IP
    assert calls == ["api.test"]


@pytest.mark.parametrize(
    "target",
    [
        "http://100.100.100.200/latest/meta-data/",  # cloud metadata in 100.64.0.0/10
        "http://100.64.0.1/",
        "http://198.18.0.1/",  # benchmarking 198.18.0.0/15
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped IPv6
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
        "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
        "http://192.0.2.1/",  # documentation
        "http://0.0.0.0/",
        "http://[fc00::1]/",
        "http://224.0.0.1/",
    ],
)
async def test_addresses_that_are_not_global_are_refused(target: str) -> None:
    with pytest.raises(ToolError, match=r"refused.*not a globally routable"):
        await http_request(HttpRequestArgs(url=target, timeout_s=2), ctx(settings()))


async def test_the_allow_list_names_networks_not_everything() -> None:
    allowed = await pin("http://127.0.0.1:9/", False, LOOPBACK)
    assert allowed == "127.0.0.1"
    with pytest.raises(ToolError, match="refused"):
        await pin("http://10.0.0.1/", False, LOOPBACK)


async def test_a_cross_origin_redirect_drops_credentials_and_body(url: str, other_url: str) -> None:
    """The finding: a cross-origin redirect kept the method, body and Authorization."""
    s = settings(http_allow_networks=LOOPBACK)
    secret = {"Authorization": "Bearer s3cret", "Cookie": "session=abc", "X-Trace": "t1"}
    elsewhere = f"{other_url}/echo"
    got = await http_request(
        HttpRequestArgs(method="POST", url=f"{url}/to?url={quote(elsewhere)}",
                        headers=secret, body={"transfer": 100}),
        ctx(s),
    )  # fmt: skip
    seen = got["body"]
    assert "authorization" not in seen["headers"] and "cookie" not in seen["headers"]
    assert seen["headers"]["x-trace"] == "t1"
    assert seen["body"] is None and seen["method"] == "GET"
    # the same origin keeps them (a 307 keeps method and body)
    got = await http_request(
        HttpRequestArgs(method="POST", url=f"{url}/to?url=/echo", headers=secret,
                        body={"transfer": 100}),
        ctx(s),
    )  # fmt: skip
    seen = got["body"]
    assert seen["headers"]["authorization"] == "Bearer s3cret"
    assert seen["method"] == "POST" and seen["body"] == {"transfer": 100}


async def test_each_redirect_hop_is_checked(url: str) -> None:
    s = settings(http_allow_networks=LOOPBACK)
    meta = quote("http://100.100.100.200/latest/meta-data/")
    with pytest.raises(ToolError, match="refused"):
        await http_request(HttpRequestArgs(url=f"{url}/to?url={meta}&code=302"), ctx(s))


async def test_one_deadline_for_the_whole_request(url: str) -> None:
    """The finding: the timeout was per read, so a server sending a byte at a time held
    a request 20s with a 5s setting."""
    s = settings(http_allow_networks=LOOPBACK, http_timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(ToolError, match=r"timed out after 1\.0s"):
        await http_request(HttpRequestArgs(url=f"{url}/drip"), ctx(s))
    assert time.monotonic() - started < 30  # the drip lasts 60s; generous on a loaded machine


def self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    cert, key = tmp / f"{name}.crt", tmp / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@contextlib.asynccontextmanager
async def tls_server(cert: Path, key: Path) -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(http_server.APP, host="127.0.0.1", port=port, log_level="warning",
                            ssl_certfile=str(cert), ssl_keyfile=str(key))  # fmt: skip
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = server.force_exit = True
        await task


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl CLI")
async def test_tls_to_the_pinned_address_checks_the_name(tmp_path: Path) -> None:
    """Connected to the checked IP, TLS still sends the name (SNI) and verifies the
    certificate against it: a certificate for another name is refused."""

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    s = settings(http_allow_networks=LOOPBACK)
    for served, ok in (("api.test", True), ("other.test", False)):
        cert, key = self_signed(tmp_path, served)
        trust = ssl.create_default_context(cafile=str(cert))
        async with tls_server(cert, key) as port:
            args = HttpRequestArgs(url=f"https://api.test:{port}/ok", timeout_s=10)
            if ok:
                got = await http_request(args, ctx(s, resolver=resolver, tls_verify=trust))
                assert got["status"] == 200 and got["body"] == {"ok": True}
            else:
                with pytest.raises(ToolError, match=r"(?i)certificate|hostname"):
                    await http_request(args, ctx(s, resolver=resolver, tls_verify=trust))
