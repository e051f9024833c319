"""Approval proofs: an HMAC the gateway puts on every decision and the workflow checks.

Why: a Temporal signal or update carries whatever identity its sender writes, so the
workflow cannot trust an `approver` field on its own. The gateway authenticates the
caller, then signs (HMAC-SHA256) a canonical encoding of exactly what it vouches
for: run id, step id, decision, approver identity, groups, the comment, a nonce and
the time it was issued, and, when the approver edited the gated step's output, a
SHA-256 of the edited output (absent otherwise, so proofs made before edits existed
encode to the same bytes and still verify). The workflow recomputes the HMAC and
counts the decision only if it matches. Anyone who can merely signal the workflow (Temporal CLI, Web UI)
cannot produce a valid proof without the key.

The key never enters history: the worker installs it in this module at start
(`install_keys`), and workflow code reads it from here (this module is imported
passed-through the sandbox, like the rest of `workflows/`). Verification is pure
(stdlib `hmac`), so it can run in an update validator. Several keys may be
installed: the first signs, all verify, so a key can be rotated while signed
decisions in running histories still replay.

Budget raises (`raise_budget`) carry a proof of the same kind, over their own encoding
(`kind: budget_raise`, so an approval proof can never pass for a raise or the other way
round): the gateway vouches that the caller holds `tasks:approve` and may see the run,
and the workflow believes no scope a raw update claims.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from workflows.models import ApprovalDecision, ApprovalProof, BudgetRaise

VERSION = 1
# A proof is accepted only this long after it was issued (workflow time), and not
# for an approval requested more than SKEW after it was issued: a captured proof
# cannot be replayed later, nor against a later visit of the same step.
MAX_AGE = timedelta(minutes=10)
SKEW = timedelta(minutes=2)

_KEYS: list[bytes] = []


def install_keys(keys: Iterable[bytes | str]) -> None:
    """Called by the worker (and the gateway) at start; the first key signs."""
    _KEYS[:] = [k.encode() if isinstance(k, str) else bytes(k) for k in keys if k]


def installed_keys() -> list[bytes]:
    return list(_KEYS)


def canonical(
    run_id: str,
    step_id: str,
    decision: str,
    approver: str,
    groups: Iterable[str],
    comment: str | None,
    nonce: str,
    issued_at: str,
    output: Any = None,
) -> bytes:
    """The signed bytes: compact JSON with sorted keys, groups sorted; an edited output
    (not None) adds its digest, so a decision without one encodes as it always did."""
    doc = {
        "v": VERSION,
        "run_id": run_id,
        "step_id": step_id,
        "decision": decision,
        "approver": approver,
        "groups": sorted(groups),
        "comment": comment,
        "nonce": nonce,
        "issued_at": issued_at,
    }
    if output is not None:
        doc["output_sha256"] = digest(output)
    return _encode(doc)


def _encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(
        doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


MAX_OUTPUT_DEPTH = 64  # nesting of an edited output: deeper ones are refused, not recursed


def _depth(value: Any) -> int:
    """How deeply `value` nests lists and objects, counted without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, dict | list):
            deepest = max(deepest, d)
            if d <= MAX_OUTPUT_DEPTH:
                todo.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def encoded_output(output: Any) -> str:
    """An edited output as canonical JSON (raises ValueError for NaN/Infinity, nesting
    deeper than MAX_OUTPUT_DEPTH or what JSON cannot hold): what its digest covers and
    what its size is measured on."""
    if _depth(output) > MAX_OUTPUT_DEPTH:
        raise ValueError(f"the edited output nests deeper than {MAX_OUTPUT_DEPTH} levels")
    try:
        return json.dumps(
            output, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
        )
    except (TypeError, ValueError, RecursionError) as e:
        raise ValueError(f"the edited output is not plain JSON: {e}") from None


def digest(output: Any) -> str:
    return hashlib.sha256(encoded_output(output).encode()).hexdigest()


def _mac(key: bytes, payload: bytes) -> str:
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def sign(
    key: bytes,
    run_id: str,
    decision: ApprovalDecision,
    *,
    step_id: str,
    nonce: str,
    issued_at: datetime,
) -> ApprovalDecision:
    """`decision` with its proof attached (gateway side)."""
    when = issued_at.isoformat()
    payload = canonical(
        run_id, step_id, decision.decision, decision.approver, decision.groups,
        decision.comment, nonce, when, decision.output,
    )  # fmt: skip
    proof = ApprovalProof(step_id=step_id, nonce=nonce, issued_at=when, mac=_mac(key, payload))
    return decision.model_copy(update={"proof": proof})


def check(
    decision: ApprovalDecision,
    run_id: str,
    step_id: str,
    requested_at: datetime,
    now: datetime,
    seen_nonces: Sequence[str] = (),
) -> str | None:
    """Why `decision` does not carry a valid proof for this step now; None when it does."""
    proof = decision.proof
    if proof is None:
        return (
            "the decision carries no proof: decide through the gateway (or `duratask run approve`)"
        )
    if not _KEYS:
        return "this worker has no approval key (DURATASK_APPROVAL_KEY), so no proof can be checked"
    if proof.step_id and proof.step_id != step_id:
        return f"the proof is for step '{proof.step_id}', but step '{step_id}' is waiting"
    issued = _issued_at(proof.issued_at)
    if isinstance(issued, str):
        return issued
    try:
        payload = canonical(
            run_id, proof.step_id, decision.decision, decision.approver, decision.groups,
            decision.comment, proof.nonce, proof.issued_at, decision.output,
        )  # fmt: skip
    except ValueError:
        return "the decision's edited output is not plain JSON"
    if not any(hmac.compare_digest(_mac(k, payload), proof.mac) for k in _KEYS):
        return "the proof does not match the decision (forged, altered or signed with another key)"
    if now - issued > MAX_AGE:
        return f"the proof expired: issued {proof.issued_at}, accepted for {MAX_AGE}"
    if issued + SKEW < requested_at:
        return "the proof was issued before this approval was requested"
    if proof.nonce in seen_nonces:
        return "the proof was already used"
    return None


def _issued_at(value: str) -> datetime | str:
    """When a proof was issued, or why its `issued_at` is unusable."""
    try:
        issued = datetime.fromisoformat(value)
    except ValueError:
        return "the proof's issued_at is not an ISO 8601 time"
    if issued.tzinfo is None:
        return "the proof's issued_at has no time zone"
    return issued


# ---------------------------------------------------------------- budget raises


def canonical_raise(run_id: str, req: BudgetRaise, nonce: str, issued_at: str) -> bytes:
    """The signed bytes of a budget raise: who raises it and to what, on which run."""
    doc = {
        "v": VERSION,
        "kind": "budget_raise",
        "run_id": run_id,
        "by": req.by,
        "max_tokens": req.max_tokens,
        "max_cost_usd": req.max_cost_usd,
        "comment": req.comment,
        "nonce": nonce,
        "issued_at": issued_at,
    }
    return _encode(doc)


def sign_raise(
    key: bytes, run_id: str, req: BudgetRaise, *, nonce: str, issued_at: datetime
) -> BudgetRaise:
    """`req` with the gateway's proof that an approver it authenticated sent it."""
    when = issued_at.isoformat()
    mac = _mac(key, canonical_raise(run_id, req, nonce, when))
    return req.model_copy(update={"proof": ApprovalProof(nonce=nonce, issued_at=when, mac=mac)})


def check_raise(
    req: BudgetRaise, run_id: str, now: datetime, seen_nonces: Sequence[str] = ()
) -> str | None:
    """Why `req` does not carry a valid proof now; None when it does."""
    proof = req.proof
    if proof is None:
        return (
            "the budget raise carries no proof: raise it through the gateway "
            "(or `duratask run budget`)"
        )
    if not _KEYS:
        return "this worker has no approval key (DURATASK_APPROVAL_KEY), so no proof can be checked"
    issued = _issued_at(proof.issued_at)
    if isinstance(issued, str):
        return issued
    try:
        payload = canonical_raise(run_id, req, proof.nonce, proof.issued_at)
    except ValueError:
        return "the budget raise is not plain JSON"
    if not any(hmac.compare_digest(_mac(k, payload), proof.mac) for k in _KEYS):
        return "the proof does not match the raise (forged, altered or signed with another key)"
    if now - issued > MAX_AGE:
        return f"the proof expired: issued {proof.issued_at}, accepted for {MAX_AGE}"
    if proof.nonce in seen_nonces:
        return "the proof was already used"
    return None
