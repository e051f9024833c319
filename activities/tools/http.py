"""`http_request`: HTTP for the model, with a guard against SSRF.

Before connecting, every address the host resolves to is checked: private,
loopback, link-local, multicast and reserved ranges are refused unless settings
allow them (`DURATASK_HTTP_ALLOW_PRIVATE=true`, for local development). Responses
are capped in size and time; redirects are followed by hand so each hop is checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any, Literal
from urllib.parse import urljoin, urlparse

import httpx
from pydantic import BaseModel, Field

from activities.tools.registry import ToolContext, ToolError

MAX_REDIRECTS = 5


class HttpRequestArgs(BaseModel):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: str = Field(description="Absolute http(s) URL")
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = Field(default=None, description="JSON body, or a string")
    timeout_s: float | None = Field(default=None, description="Seconds, capped by settings")


async def check_destination(url: str, allow_private: bool) -> None:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ToolError(f"only absolute http(s) URLs are allowed, got {url!r}")
    if allow_private:
        return
    host = parsed.hostname
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ToolError(f"cannot resolve {host!r}: {e}") from None
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if (
            addr.is_private
            or addr.is_loopback
            or addr.is_link_local
            or addr.is_multicast
            or addr.is_reserved
            or addr.is_unspecified
        ):
            raise ToolError(
                f"refused: {host} resolves to {addr}, a private/loopback/link-local address"
            )


async def http_request(args: HttpRequestArgs, ctx: ToolContext) -> dict[str, Any]:
    s = ctx.settings
    timeout = min(args.timeout_s or s.http_timeout_s, s.http_timeout_s)
    headers = dict(args.headers)
    if args.method not in ("GET", "HEAD"):
        headers.setdefault("Idempotency-Key", ctx.idempotency_key)
    url = args.url
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            await check_destination(url, s.http_allow_private)
            kwargs: dict[str, Any] = {"headers": headers}
            if args.body is not None:
                if isinstance(args.body, str):
                    kwargs["content"] = args.body
                else:
                    kwargs["json"] = args.body
            try:
                async with client.stream(args.method, url, **kwargs) as resp:
                    if resp.is_redirect and "location" in resp.headers:
                        url = urljoin(url, resp.headers["location"])
                        continue
                    body = await _read_capped(resp, s.http_max_response_bytes)
                    return _result(resp, body)
            except httpx.TimeoutException:
                raise ToolError(f"{args.method} {url} timed out after {timeout}s") from None
            except httpx.HTTPError as e:
                raise ToolError(f"{args.method} {url} failed: {e}") from None
    raise ToolError(f"too many redirects (>{MAX_REDIRECTS})")


async def _read_capped(resp: httpx.Response, cap: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.aiter_bytes():
        size += len(chunk)
        if size > cap:
            raise ToolError(f"response larger than {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _result(resp: httpx.Response, body: bytes) -> dict[str, Any]:
    text = body.decode(resp.encoding or "utf-8", errors="replace")
    data: Any = text
    if "json" in resp.headers.get("content-type", ""):
        try:
            import json

            data = json.loads(text)
        except ValueError:
            pass
    return {"status": resp.status_code, "headers": dict(resp.headers), "body": data}
