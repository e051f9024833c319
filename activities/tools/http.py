"""`http_request`: HTTP for the model, with a guard against SSRF.

Why each rule (docs/security.md, "Outbound requests"):
- The host is resolved **once** per hop, every address it resolves to must be
  globally routable (`ipaddress.is_global`: no private, loopback, link-local,
  shared 100.64.0.0/10 (cloud metadata such as 100.100.100.200), benchmarking
  198.18.0.0/15, multicast, reserved; IPv4 inside IPv6 is unwrapped first), and the
  connection goes to exactly the address that was checked: the URL is rewritten to
  that IP while the `Host` header and the TLS SNI / certificate check keep the name.
  A DNS-rebinding name therefore cannot answer "public" to the check and "loopback"
  to the connect.
- Redirects are followed by hand so each hop is checked the same way; a redirect to
  another origin drops `Authorization`, `Cookie` and `Proxy-Authorization` and the
  body (a body-carrying method becomes GET), so credentials and payloads meant for
  one site never reach another.
- One deadline covers the whole request: every hop, connect, and the body read. A
  server that drips a byte at a time cannot hold a request past it.
- Environment proxies are ignored (`trust_env=False`): a proxy would connect
  somewhere else than the checked address.

`DURATASK_HTTP_ALLOW_NETWORKS` lists networks allowed although not global (tests'
loopback servers, an internal API); `DURATASK_HTTP_ALLOW_PRIVATE=true` turns the
address check off entirely (local development only).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx
from pydantic import BaseModel, Field

from activities.tools.registry import ToolContext, ToolError

MAX_REDIRECTS = 5
SENSITIVE_HEADERS = {"authorization", "cookie", "proxy-authorization"}
NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]


class HttpRequestArgs(BaseModel):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: str = Field(description="Absolute http(s) URL")
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = Field(default=None, description="JSON body, or a string")
    timeout_s: float | None = Field(default=None, description="Seconds, capped by settings")


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _unwrap(addr: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4), else itself."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        if addr.sixtofour is not None:
            return addr.sixtofour
        if addr in NAT64:
            return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return addr


def refusal(addr: IPAddress, allow_private: bool, allow_networks: Iterable[str] = ()) -> str | None:
    """Why a connection to `addr` is refused; None when it is allowed."""
    if allow_private:
        return None
    inner = _unwrap(addr)
    for net in allow_networks:
        network = ipaddress.ip_network(net, strict=False)
        if addr in network or inner in network:
            return None
    if inner.is_global and not inner.is_multicast and addr.is_global:
        return None
    if inner != addr:
        return f"{addr} carries {inner}, which is not a globally routable address"
    return f"{addr} is not a globally routable address"


async def pin(
    url: str,
    allow_private: bool,
    allow_networks: Iterable[str] = (),
    resolver: Resolver = system_resolver,
) -> str:
    """Resolve `url`'s host once, check every address, and return the one to connect to."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolError(f"only absolute http(s) URLs are allowed, got {url!r}")
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ToolError(f"invalid port in {url!r}") from None
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            addresses = [ipaddress.ip_address(a.split("%")[0]) for a in await resolver(host, port)]
        except (OSError, ValueError) as e:
            raise ToolError(f"cannot resolve {host!r}: {e}") from None
        if not addresses:
            raise ToolError(f"cannot resolve {host!r}: no addresses")
    for addr in addresses:
        why = refusal(addr, allow_private, allow_networks)
        if why is not None:
            raise ToolError(f"refused: {host} resolves to {why}")
    return str(addresses[0])


def check_destination(url: str, allow_private: bool) -> Awaitable[str]:
    """Kept for callers that only want the check: the address that would be used."""
    return pin(url, allow_private)


def _origin(url: str) -> tuple[str, str, int | None]:
    p = urlsplit(url)
    return p.scheme, (p.hostname or "").lower(), p.port or (443 if p.scheme == "https" else 80)


async def http_request(args: HttpRequestArgs, ctx: ToolContext) -> dict[str, Any]:
    s = ctx.settings
    timeout = min(args.timeout_s or s.http_timeout_s, s.http_timeout_s)
    try:
        async with asyncio.timeout(timeout):
            return await _fetch(args, ctx, timeout)
    except TimeoutError:
        raise ToolError(
            f"{args.method} {args.url} timed out after {timeout}s (the whole request, "
            "redirects and body included)"
        ) from None


async def _fetch(args: HttpRequestArgs, ctx: ToolContext, timeout: float) -> dict[str, Any]:
    s = ctx.settings
    resolver: Resolver = ctx.services.get("resolver", system_resolver)
    headers = dict(args.headers)
    if args.method not in ("GET", "HEAD"):
        headers.setdefault("Idempotency-Key", ctx.idempotency_key)
    method, body, url = args.method, args.body, args.url
    # no pooled connection is reused: each was opened for one name's TLS SNI
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    verify = ctx.services.get("tls_verify", True)  # an ssl.SSLContext in tests
    async with httpx.AsyncClient(
        timeout=timeout, follow_redirects=False, trust_env=False, limits=no_reuse, verify=verify
    ) as c:
        for _ in range(MAX_REDIRECTS + 1):
            ip = await pin(url, s.http_allow_private, s.http_allow_networks, resolver)
            request = _build(c, method, url, ip, headers, body)
            try:
                resp = await c.send(request, stream=True)
                try:
                    location = resp.headers.get("location")
                    if resp.is_redirect and location:
                        nxt = urljoin(url, location)
                        if resp.status_code == 303 or (
                            resp.status_code in (301, 302) and method == "POST"
                        ):
                            method, body = ("HEAD" if method == "HEAD" else "GET"), None
                        if _origin(nxt) != _origin(url):
                            headers = {k: v for k, v in headers.items()
                                       if k.lower() not in SENSITIVE_HEADERS}  # fmt: skip
                            if body is not None:
                                method, body = "GET", None
                        url = nxt
                        continue
                    data = await _read_capped(resp, s.http_max_response_bytes)
                    return _result(resp, data)
                finally:
                    await resp.aclose()
            except httpx.TimeoutException:
                raise TimeoutError from None
            except httpx.HTTPError as e:
                raise ToolError(f"{method} {url} failed: {e}") from None
    raise ToolError(f"too many redirects (>{MAX_REDIRECTS})")


def _build(
    client: httpx.AsyncClient, method: str, url: str, ip: str, headers: dict[str, str], body: Any
) -> httpx.Request:
    """A request to `ip` that still says `url`'s name in Host and TLS SNI."""
    target = httpx.URL(url)
    kwargs: dict[str, Any] = {"headers": {**headers, "Host": target.netloc.decode("ascii")}}
    if body is not None:
        if isinstance(body, str):
            kwargs["content"] = body
        else:
            kwargs["json"] = body
    request = client.build_request(method, target.copy_with(host=ip), **kwargs)
    if target.scheme == "https":
        request.extensions["sni_hostname"] = target.host
    return request


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
            data = json.loads(text)
        except ValueError:
            pass
    return {"status": resp.status_code, "headers": dict(resp.headers), "body": data}
