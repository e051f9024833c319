"""Page tokens of the lists backed by Temporal visibility (`/v1/runs`, `/v1/approvals`).

Temporal's next-page token is opaque bytes; handing it back as plain base64 let any
text through (`page_token=abc` failed to decode: 500; `page_token=null` decoded to
bytes Temporal rejected: 502). The gateway's tokens carry a short check of their bytes,
so a token it did not give out is refused as bad input (422) before Temporal sees it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from api.errors import unprocessable


def _check(raw: bytes) -> str:
    return hashlib.sha256(b"duratask-page\x00" + raw).hexdigest()[:12]


def encode_page_token(raw: bytes | None) -> str | None:
    if not raw:
        return None
    return base64.urlsafe_b64encode(raw).decode().rstrip("=") + "." + _check(raw)


def decode_page_token(token: str | None) -> bytes | None:
    """The Temporal token inside one of ours; 422 for anything else ("" means none)."""
    if not token:
        return None
    body, _, check = token.rpartition(".")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)) if body else b""
    except (binascii.Error, ValueError):
        raw = b""
    if not raw or not hmac.compare_digest(check, _check(raw)):
        raise unprocessable(
            f"page_token {token[:40]!r} is not a token this endpoint gave out: "
            "pass the next_page_token of the previous page"
        )
    return raw
