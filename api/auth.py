"""Who is calling, and what they may do.

Every request carries `Authorization: Bearer <token>`. A token is either a static
API key from settings (mapped to an identity, scopes and groups) or a JWT verified
against a shared secret or a JWKS (issuer and audience checked). Scopes:
`tasks:read`, `tasks:write`, `tasks:approve`, `tasks:admin` (sees and acts on everyone's
runs, definitions and schedules: duratask/access.py). With no keys and no JWT configured and
`auth_required` off, the gateway is open and every caller is the local user.

JWTs must carry `exp`; the identity is the `email` claim when `email_verified` is
true, else `sub` (never one starting with `group:`); scopes come
from `scope` (space-separated) or `scopes` (a list); groups from `groups` (a list or
a space-separated string), which approval steps match as `group:<name>`.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import jwt

from api.errors import ApiError
from duratask.settings import Settings
from workflows.approvals import principal_names

SCOPES = ("tasks:read", "tasks:write", "tasks:approve", "tasks:admin")


@dataclass(frozen=True)
class Principal:
    identity: str
    scopes: frozenset[str]
    groups: frozenset[str] = field(default_factory=frozenset)

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    def names(self) -> set[str]:
        """Everything an approver list may name this principal by (the workflow's rule:
        the identity, and `group:<name>` per group, compared case-insensitively)."""
        return principal_names(self.identity, self.groups)


LOCAL = Principal("local", frozenset(SCOPES))


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def open(self) -> bool:
        s = self.settings
        return not s.auth_required and not s.api_keys and not s.jwt_secret and not s.jwt_jwks_url

    @cached_property
    def _jwks(self) -> Any:
        return jwt.PyJWKClient(self.settings.jwt_jwks_url) if self.settings.jwt_jwks_url else None

    def authenticate(self, authorization: str | None) -> Principal:
        if self.open:
            return LOCAL
        if not authorization or not authorization.lower().startswith("bearer "):
            raise ApiError(
                401,
                "missing bearer token: send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        token = authorization[7:].strip()
        for key in self.settings.api_keys:
            if hmac.compare_digest(key.key.get_secret_value(), token):
                return Principal(key.identity, frozenset(key.scopes), frozenset(key.groups))
        if self.settings.jwt_secret or self._jwks:
            return self._from_jwt(token)
        raise ApiError(401, "invalid token")

    def _from_jwt(self, token: str) -> Principal:
        s = self.settings
        try:
            if self._jwks is not None:
                key: Any = self._jwks.get_signing_key_from_jwt(token).key
                algorithms = ["RS256", "ES256", "EdDSA"]
            else:
                assert s.jwt_secret is not None
                key, algorithms = s.jwt_secret.get_secret_value(), ["HS256"]
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=s.jwt_audience,
                issuer=s.jwt_issuer,
                options={"verify_aud": s.jwt_audience is not None, "require": ["exp"]},
            )
        except jwt.PyJWTError as e:
            raise ApiError(401, f"invalid token: {e}") from None
        scopes = _names(claims, "scope") or _names(claims, "scopes")
        identity = jwt_identity(claims)
        groups = _names(claims, "groups")
        return Principal(identity, frozenset(scopes), frozenset(groups))


def _names(claims: dict[str, Any], claim: str) -> list[str]:
    """A claim that is a space-separated string or a list of strings; any other type is
    a malformed token (401), never a server error."""
    value = claims.get(claim)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list) and all(
        isinstance(v, str | int) and not isinstance(v, bool) for v in value
    ):
        return [str(v) for v in value]
    raise ApiError(
        401,
        f"invalid token: claim '{claim}' must be a string or a list of strings",
        headers={"WWW-Authenticate": "Bearer"},
    )


def jwt_identity(claims: dict[str, Any]) -> str:
    """The identity a JWT names: `email` only when `email_verified` is true, else `sub`.

    An identity can never name a group: approver lists say `group:<name>` for groups,
    so a `sub` (or email) starting with `group:` is refused outright.
    """
    email = claims.get("email")
    verified = claims.get("email_verified") is True
    identity = email if isinstance(email, str) and email.strip() and verified else claims.get("sub")
    if not isinstance(identity, str) or not identity.strip():
        raise ApiError(401, "invalid token: no 'sub' claim (nor a verified 'email')")
    if identity.strip().casefold().startswith("group:"):
        raise ApiError(401, "invalid token: an identity may not start with 'group:'")
    return identity


def require_scope(principal: Principal, scope: str) -> None:
    if not principal.has(scope):
        raise ApiError(403, f"'{principal.identity}' lacks the '{scope}' scope")


def is_loopback(host: str) -> bool:
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def open_bind_refusal(settings: Settings, host: str) -> str | None:
    """Why the gateway must not start on `host`: auth is open (no keys, no JWT, not
    required) and `host` is reachable from other machines. None when it may start."""
    if not Authenticator(settings).open or is_loopback(host) or settings.insecure:
        return None
    return (
        f"refusing to serve on {host} with authentication open: anyone who can reach it "
        "could start, read and cancel every run. Configure DURATASK_API_KEYS or "
        "DURATASK_JWT_SECRET / DURATASK_JWT_JWKS_URL (or DURATASK_AUTH_REQUIRED=true), "
        "bind to 127.0.0.1, or pass --insecure (DURATASK_INSECURE=true) if you really mean it"
    )


def open_auth_warning(settings: Settings) -> str | None:
    if not Authenticator(settings).open:
        return None
    return (
        "authentication is open: every caller is 'local' with every scope (tasks:admin "
        "included). Set DURATASK_API_KEYS or a JWT issuer before anyone else can reach it."
    )
