"""The codec server: Temporal's Web UI and CLI send sealed payloads here to read them.

Temporal's codec server contract: `POST <endpoint>/decode` and `<endpoint>/encode` with
a proto3-JSON body `{"payloads": [{"metadata": {"encoding": "<base64>"}, "data":
"<base64>"}]}`, answered in the same shape. The endpoint is `<gateway>/codec`.
Decoding needs a bearer token with `tasks:read`, encoding (the UI starting or signalling
with encrypted input) `tasks:write`. A browser UI reaches it through CORS for the
origins in settings (api/app.py). For a UI that cannot forward a user's token (the dev
server's), `duratask dev` sets a random path secret: `<gateway>/codec/ui/<secret>`.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Request, Response
from google.protobuf import json_format
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payloads

from api.deps import Reader, Writer
from api.errors import COMMON, ApiError, ErrorBody, responses
from duratask.codec import DecryptError, EncryptionCodec, codec_for
from duratask.settings import Settings

router = APIRouter(prefix="/codec", tags=["codec"], responses=responses(*COMMON, 404))

_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["payloads"],
    "properties": {
        "payloads": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "metadata": {
                        "type": "object",
                        "additionalProperties": {"type": "string", "format": "byte"},
                    },
                    "data": {"type": "string", "format": "byte"},
                },
            },
        }
    },
}
_BODY = {"required": True, "content": {"application/json": {"schema": _SCHEMA}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the payloads, run through the codec",
        "content": {"application/json": {"schema": _SCHEMA}},
    },
    400: {"description": "the body is not a codec request", "model": ErrorBody},
    401: {"description": "no or bad bearer token", "model": ErrorBody},
    403: {"description": "the token lacks the scope", "model": ErrorBody},
    404: {"description": "payload encryption is off, or an unknown UI secret", "model": ErrorBody},
    413: {"description": "the body is over the codec's size limit", "model": ErrorBody},
    422: {"description": "a payload does not open with any configured key", "model": ErrorBody},
}
_OPENAPI = {"requestBody": _BODY}


def _codec(request: Request) -> EncryptionCodec:
    codec: EncryptionCodec | None = request.app.state.codec
    if codec is None:
        raise ApiError(404, "payload encryption is off (set DURATASK_ENCRYPTION_KEYS)")
    return codec


async def _run(request: Request, encode: bool) -> Response:
    codec = _codec(request)
    settings: Settings = request.app.state.settings
    body = await request.body()
    if len(body) > settings.codec_max_body_bytes:
        raise ApiError(413, f"codec request over {settings.codec_max_body_bytes} bytes")
    payloads = Payloads()
    try:
        json_format.Parse(body or b"{}", payloads)
    except json_format.ParseError as e:
        raise ApiError(400, f'expected {{"payloads": [...]}} in proto3 JSON: {e}') from None
    try:
        out = await (codec.encode if encode else codec.decode)(list(payloads.payloads))
    except DecryptError as e:
        raise ApiError(422, str(e)) from None
    return Response(
        json_format.MessageToJson(Payloads(payloads=out), indent=None),
        media_type="application/json",
    )


@router.post("/decode", responses=_RESPONSES, openapi_extra=_OPENAPI)
async def decode(request: Request, _: Reader) -> Response:
    return await _run(request, encode=False)


@router.post("/encode", responses=_RESPONSES, openapi_extra=_OPENAPI)
async def encode(request: Request, _: Writer) -> Response:
    return await _run(request, encode=True)


def _ui_secret(request: Request, secret: str) -> None:
    expected = request.app.state.settings.codec_ui_secret
    if expected is None or not hmac.compare_digest(expected.get_secret_value(), secret):
        raise ApiError(404, "not found")


@router.post("/ui/{secret}/decode", responses=_RESPONSES, openapi_extra=_OPENAPI)
async def ui_decode(request: Request, secret: str) -> Response:
    """For a Web UI that cannot send a user's token (the dev server's): the path secret
    `duratask dev` gave it stands in for the token."""
    _ui_secret(request, secret)
    return await _run(request, encode=False)


@router.post("/ui/{secret}/encode", responses=_RESPONSES, openapi_extra=_OPENAPI)
async def ui_encode(request: Request, secret: str) -> Response:
    _ui_secret(request, secret)
    return await _run(request, encode=True)


class _CodecCORS:
    """CORS for /codec/* only (the Web UI's origin calls it from the browser); the rest
    of the gateway answers no cross-origin requests."""

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Namespace"],
            allow_credentials=True,
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(router.prefix + "/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def install(app: FastAPI, settings: Settings) -> None:
    """The codec (None when encryption is off) and CORS for the Web UI's origin."""
    app.state.codec = codec_for(settings)
    origins = settings.codec_cors_origins or [_origin(settings.temporal_ui_url)]
    app.add_middleware(_CodecCORS, origins=origins)  # type: ignore[arg-type]
    app.include_router(router)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
