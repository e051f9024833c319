"""Console sessions: an API key or JWT is exchanged once for a signed, expiring cookie.

The browser never keeps the bearer token: the cookie carries only who the caller is
(identity, scopes, groups, as the authenticator resolved them), a CSRF token and an
expiry, signed with `console_session_secret` (itsdangerous). It is HttpOnly and
SameSite=Strict; every state-changing form also carries the session's CSRF token.

`duratask dev` prints a sign-in link holding a one-time token signed with the same
secret; the gateway accepts each link once (the nonces it has seen are kept until
the link would have expired anyway).
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from api.auth import Principal
from duratask.settings import Settings

COOKIE = "duratask_session"
LINK_TTL_S = 600
_SESSION_SALT = "duratask-console-session"
_LINK_SALT = "duratask-console-link"


@dataclass(frozen=True)
class Session:
    principal: Principal
    csrf: str
    expires_at: float

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf, token or "")


def _principal(data: dict[str, Any]) -> Principal:
    return Principal(
        str(data["i"]),
        frozenset(str(s) for s in data.get("s") or []),
        frozenset(str(g) for g in data.get("g") or []),
    )


def _payload(p: Principal) -> dict[str, object]:
    return {"i": p.identity, "s": sorted(p.scopes), "g": sorted(p.groups)}


def secret_of(settings: Settings) -> str:
    s = settings.console_session_secret
    return s.get_secret_value() if s is not None else ""


def link_token(secret: str, principal: Principal) -> str:
    """A one-time sign-in token (for `duratask dev`'s link), valid LINK_TTL_S seconds."""
    signer = URLSafeTimedSerializer(secret, salt=_LINK_SALT)
    return signer.dumps({**_payload(principal), "n": secrets.token_urlsafe(16)})


class Sessions:
    def __init__(self, settings: Settings) -> None:
        secret = secret_of(settings) or secrets.token_urlsafe(32)
        self.max_age = int(settings.console_session_hours * 3600)
        self.secure = settings.console_cookie_secure
        self._cookie = URLSafeTimedSerializer(secret, salt=_SESSION_SALT)
        self._links = URLSafeTimedSerializer(secret, salt=_LINK_SALT)
        self._used_links: dict[str, float] = {}

    def issue(self, principal: Principal, not_after: float | None = None) -> tuple[str, Session]:
        """A new session (and its cookie value); never outlives `not_after` (a JWT's exp)."""
        expires = time.time() + self.max_age
        if not_after is not None:
            expires = min(expires, not_after)
        session = Session(principal, secrets.token_urlsafe(24), expires)
        value = self._cookie.dumps({**_payload(principal), "c": session.csrf, "x": expires})
        return value, session

    def read(self, value: str | None) -> Session | None:
        if not value:
            return None
        try:
            data = self._cookie.loads(value, max_age=self.max_age)
        except (BadSignature, SignatureExpired):
            return None
        if not isinstance(data, dict) or float(data.get("x", 0)) < time.time():
            return None
        return Session(_principal(data), str(data["c"]), float(data["x"]))

    def redeem_link(self, token: str) -> Principal | None:
        """The principal of a valid, unused sign-in link token; None otherwise."""
        try:
            data = self._links.loads(token, max_age=LINK_TTL_S)
        except (BadSignature, SignatureExpired):
            return None
        now = time.time()
        self._used_links = {n: t for n, t in self._used_links.items() if t > now}
        nonce = str(data.get("n", ""))
        if not nonce or nonce in self._used_links:
            return None
        self._used_links[nonce] = now + LINK_TTL_S
        return _principal(data)
