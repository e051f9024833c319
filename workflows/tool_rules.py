"""Tool policy rules, pure: which rule decides a call, what approvers may see of it.

Kept apart from the workflow side (`workflows/tool_policies.py`) so the settings and
the definition validator can check rules without importing the Temporal SDK. Every
function here is deterministic: the workflow evaluates rules with them on replay.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from workflows.definition import ToolPolicy
from workflows.expressions import CONSTANTS, ExpressionError, evaluate_condition, parse, references

# what a rule's `when` may read, besides literals
NAMES = ("args", "tool", "input", "steps", "run")
MAX_SHOWN_ARGS_CHARS = 4000  # arguments shown to approvers (state, memo, events)
MASK = "***"
# argument keys whose values are never shown (as in the logs: duratask/logging.py)
SECRET_MARKERS = ("api_key", "apikey", "authorization", "token", "secret", "password", "cookie")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
# a URL's query parameter whose name looks secret: `?api_key=...`, `&token=...`
_QUERY_SECRET = re.compile(
    r"(?i)([?&][^=&#\s]*(?:key|token|secret|password|passwd|auth|signature|sig)[^=&#\s]*=)[^&#\s]*"
)
_KEYLIKE = re.compile(r"\b(sk|pk|rk|ghp|gho|xox[abp])[-_][A-Za-z0-9_-]{12,}")


@dataclass(frozen=True)
class Match:
    rule: ToolPolicy
    where: str  # e.g. "settings.tool_policies[0]", "definition.tool_policies[2]"


def problems(rules: list[ToolPolicy], prefix: str) -> list[tuple[str, str]]:
    """(field, message) for every rule whose `when` or `tool` is not valid; `prefix`
    names the list (`tool_policies`). Used on definition save and at settings load."""
    out: list[tuple[str, str]] = []
    for i, rule in enumerate(rules):
        at = f"{prefix}[{i}]"
        if rule.when is not None:
            try:
                tree = parse(rule.when)
            except ExpressionError as e:
                out.append((f"{at}.when", f"expression error: {e}"))
                continue
            unknown = sorted(
                {r.split(".")[0] for r in references(tree)} - set(NAMES) - set(CONSTANTS)
            )
            if unknown:
                out.append((f"{at}.when", f"unknown name {unknown[0]!r}: use {', '.join(NAMES)}"))
        if (
            rule.min_approvals > len(rule.approvers)
            and rule.action == "approve"
            and not any(a.startswith("group:") for a in rule.approvers)
        ):
            out.append((f"{at}.min_approvals", "larger than the number of approvers"))
    return out


def first_match(
    org: list[ToolPolicy],
    own: list[ToolPolicy],
    tool: str,
    args: dict[str, Any],
    namespace: dict[str, Any],
) -> Match | None:
    """The rule that decides this call (organisation's first), None when none matches.

    Raises ExpressionError (naming the rule) when a matching rule's `when` fails."""
    ns = {**namespace, "tool": tool, "args": args}
    for origin, rules in (("settings", org), ("definition", own)):
        for i, rule in enumerate(rules):
            if not fnmatchcase(tool, rule.tool):
                continue
            where = f"{origin}.tool_policies[{i}]"
            if rule.when is not None:
                try:
                    hit = evaluate_condition(rule.when, ns)
                except ExpressionError as e:
                    raise ExpressionError(f"{where}.when: {e}") from None
                if not hit:
                    continue
            return Match(rule, where)
    return None


def _secret_key(key: str) -> bool:
    name = key.lower().replace("-", "_")
    return any(m in name for m in SECRET_MARKERS)


def redact(value: Any) -> Any:
    """`value` with secret-looking keys and token-shaped strings masked (pure)."""
    if isinstance(value, dict):
        return {k: MASK if _secret_key(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        value = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", value)
        return _KEYLIKE.sub(MASK, _QUERY_SECRET.sub(rf"\1{MASK}", value))
    return value


def shown_args(args: dict[str, Any]) -> dict[str, Any]:
    """What approvers see of the arguments: redacted, and bounded in size."""
    safe = redact(args)
    text = json.dumps(safe, sort_keys=True, default=str)
    if len(text) <= MAX_SHOWN_ARGS_CHARS:
        return safe  # type: ignore[no-any-return]
    return {"(truncated)": text[:MAX_SHOWN_ARGS_CHARS] + "..."}


def describe_call(tool: str, args: dict[str, Any]) -> str:
    """One line naming the call, e.g. `http_request POST https://x/y`."""
    if tool == "http_request":
        method = str(args.get("method") or "GET").upper()
        return f"http_request {method} {redact(str(args.get('url', '')))[:1000]}"
    text = json.dumps(redact(args), sort_keys=True, default=str)
    return f"{tool} {text[:200]}"
