"""JWT bearer tokens against the real gateway: a shared-secret (HS256) token with issuer
and audience checked, its scopes and groups honoured, and every bad token a 401.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import jwt
from temporalio.testing import WorkflowEnvironment

from tests.stack import run_stack

SECRET = "test-shared-secret-of-at-least-32-bytes!!"
ISSUER = "https://idp.example.com"
AUDIENCE = "duratask"
JWT_SETTINGS: dict[str, Any] = {
    "jwt_secret": SECRET,
    "jwt_issuer": ISSUER,
    "jwt_audience": AUDIENCE,
}


def token(secret: str = SECRET, **claims: Any) -> str:
    now = int(time.time())
    body = {"sub": "ann", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm="HS256")


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


async def test_hs256_tokens_issuer_audience_scopes(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with run_stack(dev_env, task_queue, tmp_path, worker=False, **JWT_SETTINGS) as s:
        reader = token(scope="tasks:read")
        assert (await s.http.get("/v1/runs", headers=bearer(reader))).status_code == 200
        r = await s.http.post("/v1/runs", json={"definition_id": "x"}, headers=bearer(reader))
        assert r.status_code == 403 and "tasks:write" in r.json()["detail"]
        writer = token(scopes=["tasks:read", "tasks:write"])  # a list claim works too
        r = await s.http.post("/v1/runs", json={"definition_id": "x"}, headers=bearer(writer))
        assert r.status_code == 404  # authorised; the definition does not exist

        bad = {
            "no token": {},
            "not a JWT": bearer("garbage"),
            "wrong key": bearer(token(secret="another-secret-another-secret-12345")),
            "wrong issuer": bearer(token(iss="https://evil.example.com", scope="tasks:read")),
            "no issuer": bearer(token(iss=None, scope="tasks:read")),
            "wrong audience": bearer(token(aud="someone-else", scope="tasks:read")),
            "expired": bearer(token(exp=int(time.time()) - 3600, scope="tasks:read")),
            "no expiry": bearer(token(exp=None, scope="tasks:read")),
            "no subject": bearer(token(sub=None, scope="tasks:read")),
            "not bearer": {"Authorization": f"Basic {reader}"},
        }
        for why, headers in bad.items():
            r = await s.http.get("/v1/runs", headers=headers)
            assert r.status_code == 401, f"{why}: {r.status_code} {r.text}"
            assert r.json()["detail"], why


async def test_jwt_groups_decide_an_approval(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with run_stack(dev_env, task_queue, tmp_path, **JWT_SETTINGS) as s:
        eng = bearer(token(sub="eng", scope="tasks:read tasks:write"))
        definition = {
            "id": "jwt-gate",
            "steps": [{"id": "ok", "action": "approval", "approvers": ["group:sre"]}],
        }
        assert (
            await s.http.put("/v1/definitions/jwt-gate", json=definition, headers=eng)
        ).is_success
        r = await s.http.post("/v1/runs", json={"definition_id": "jwt-gate"}, headers=eng)
        run_id = r.json()["run_id"]
        for _ in range(300):
            state = (await s.http.get(f"/v1/runs/{run_id}", headers=eng)).json()
            if state["status"] == "awaiting_approval":
                break
            await asyncio.sleep(0.1)
        decide = f"/v1/runs/{run_id}/approvals"
        outsider = bearer(
            token(email="zed@example.com", email_verified=True, scope="tasks:approve",
                  groups=["dev"])
        )  # fmt: skip
        r = await s.http.post(decide, json={"decision": "approve"}, headers=outsider)
        assert r.status_code == 404, r.text  # neither an approver nor the owner's: unseen
        # the findings: a `sub` naming a group decided a group-gated step; an unverified
        # `email` was taken as the identity
        as_group = bearer(token(sub="group:sre", scope="tasks:approve"))
        r = await s.http.post(decide, json={"decision": "approve"}, headers=as_group)
        assert r.status_code == 401 and "group:" in r.json()["detail"]
        r = await s.http.post(decide, json={"decision": "approve"},
                              headers=bearer(token(sub="GROUP:sre", scope="tasks:approve")))  # fmt: skip
        assert r.status_code == 401
        unverified = bearer(token(sub="mal", email="sue@example.com", scope="tasks:approve"))
        r = await s.http.get("/v1/approvals", headers=unverified)
        assert r.json()["approver"] == ["mal"], r.text  # the sub, not the unverified email
        verified = bearer(token(sub="mal", email="sue@example.com", email_verified=True,
                                scope="tasks:approve"))  # fmt: skip
        r = await s.http.get("/v1/approvals", headers=verified)
        assert r.json()["approver"] == ["sue@example.com"], r.text
        sre = bearer(
            token(email="sue@example.com", email_verified=True, scope="tasks:approve",
                  groups=["sre"])
        )  # fmt: skip
        r = await s.http.post(decide, json={"decision": "approve"}, headers=sre)
        assert r.status_code == 200, r.text
        res = (await s.http.get(f"/v1/runs/{run_id}/result?wait=30", headers=eng)).json()
    assert res["status"] == "completed", res
    assert res["state"]["steps"][0]["output"]["approver"] == "sue@example.com"
