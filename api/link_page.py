"""The decision page a delivered link opens, and reading what its form posts.

One small self-contained HTML page (no script, no external assets, no cookies): the
request (run, step, prompt; the approvers and votes, or the input's fields) and a form
that posts back to the same link (no `action`: the page's own URL, behind any proxy).
The page never decides by being fetched (mail scanners prefetch links); only the POST
does, and the token in the URL the form posts to is the credential, so there is
nothing a cross-site request could forge without it.

An `input` step's JSON Schema becomes one form field per top-level property of a simple
type (string, number, integer, boolean, enum); anything else is a JSON text area. What
the form posts is converted back by the schema's types; the run itself validates it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment

MAX_FIELD_CHARS = 20_000
SIMPLE = ("string", "number", "integer", "boolean")
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
}

_ENV = Environment(autoescape=True)
_PAGE = _ENV.from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}: duratask</title>
<style>
body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#222}
pre{white-space:pre-wrap;background:#f4f4f4;padding:.8rem;border-radius:4px}
label{display:block;margin:.8rem 0 .2rem;font-weight:600}
input,select,textarea{width:100%;padding:.4rem;box-sizing:border-box}
button{padding:.5rem 1.2rem;margin:1rem .5rem 0 0}
.meta{color:#555;font-size:.9rem}
</style></head><body>
<h1>{{ title }}</h1>
{% if done %}
<p>{{ done }}</p>
{% else %}
<p class="meta">Run <code>{{ run_id }}</code>{% if definition %} ({{ definition }}){% endif %},
step <code>{{ step_id }}</code>. This link is for <strong>{{ recipient }}</strong>, works
once, and expires at {{ expires_at }}.</p>
{% if prompt %}<pre>{{ prompt }}</pre>{% endif %}
<form method="post">
{% if kind == "approval" %}
<p class="meta">Approvers: {{ approvers }}. Approvals: {{ approvals }} of {{ min_approvals }}
needed{% if deadline %}; decided by {{ deadline }} at the latest{% endif %}.</p>
<label for="comment">Comment (optional)</label>
<textarea id="comment" name="comment" rows="3" maxlength="4000"></textarea>
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="reject">Reject</button>
{% else %}
{% for f in fields %}
<label for="f-{{ loop.index }}">{{ f.name }}{% if f.required %} *{% endif %}</label>
{% if f.description %}<div class="meta">{{ f.description }}</div>{% endif %}
{% if f.options %}
<select id="f-{{ loop.index }}" name="field.{{ f.name }}">
{% if not f.required %}<option value=""></option>{% endif %}
{% for o in f.options %}<option value="{{ o }}"{% if o == f.default %} selected{% endif %}>{{ o }}</option>{% endfor %}
</select>
{% else %}
<input id="f-{{ loop.index }}" name="field.{{ f.name }}" value="{{ f.default }}"
 {% if f.type in ("number", "integer") %}inputmode="decimal"{% endif %}>
{% endif %}
{% endfor %}
{% if raw %}
<label for="value">Value (JSON)</label>
<textarea id="value" name="value" rows="8">{{ raw }}</textarea>
<pre class="meta">{{ schema }}</pre>
{% endif %}
<button type="submit">Submit</button>
{% endif %}
</form>
{% endif %}
</body></html>
"""
)


def form_fields(schema: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The schema's top-level properties as form fields; None when it is not that simple."""
    props = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(props, dict) or not props:
        return None
    required = set(schema.get("required") or [])
    fields = []
    for name, spec in props.items():
        if not isinstance(spec, dict):
            return None
        kind = spec.get("type")
        enum = spec.get("enum")
        if kind not in SIMPLE and not (isinstance(enum, list) and enum):
            return None
        options = [_text(v) for v in enum] if isinstance(enum, list) else None
        if kind == "boolean" and options is None:
            options = ["true", "false"]
        default = _text(spec["default"]) if "default" in spec else ""
        fields.append({"name": str(name), "type": kind, "required": name in required,
                       "options": options, "default": default,
                       "description": spec.get("description") or spec.get("title")})  # fmt: skip
    return fields


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return v if isinstance(v, str) else json.dumps(v)


def value_from_form(
    schema: dict[str, Any], form: dict[str, str]
) -> tuple[Any, list[dict[str, str]]]:
    """The value the form posted, typed by `schema`, and the fields that could not be read."""
    if "value" in form:
        try:
            return json.loads(form["value"]), []
        except ValueError as e:
            return None, [{"field": "value", "message": f"not valid JSON: {e}"}]
    fields = form_fields(schema) or []
    out: dict[str, Any] = {}
    problems: list[dict[str, str]] = []
    props = schema.get("properties") or {}
    for f in fields:
        text = form.get(f"field.{f['name']}")
        if text is None or (text == "" and f["type"] != "string"):
            continue
        if text == "" and not f["required"]:
            continue
        spec = props.get(f["name"], {})
        try:
            out[f["name"]] = _typed(text, spec)
        except ValueError:
            problems.append({"field": f["name"], "message": f"not a valid {f['type']}: {text!r}"})
    return out, problems


def _typed(text: str, spec: dict[str, Any]) -> Any:
    kind = spec.get("type")
    if isinstance(spec.get("enum"), list):
        for v in spec["enum"]:
            if _text(v) == text:
                return v
    if kind == "integer":
        return int(text)
    if kind == "number":
        n = float(text)
        if n != n or n in (float("inf"), float("-inf")):
            raise ValueError(text)
        return n
    if kind == "boolean":
        if text not in ("true", "false"):
            raise ValueError(text)
        return text == "true"
    return text


def when(iso: str | None) -> str | None:
    """An ISO time as people read it, in UTC: `2026-11-30 07:48 UTC`."""
    if not iso:
        return None
    try:
        t = datetime.fromisoformat(iso).astimezone(UTC)
    except ValueError:
        return iso
    return t.strftime("%Y-%m-%d %H:%M UTC")


def render(**ctx: Any) -> str:
    if ctx.get("kind") == "input" and not ctx.get("done"):
        schema = ctx.get("input_schema") or {}
        fields = form_fields(schema)
        ctx["fields"] = fields or []
        if fields is None:
            ctx["raw"] = json.dumps(_defaults(schema), indent=2)
            ctx["schema"] = json.dumps(schema, indent=2)
    return _PAGE.render(**ctx)


def _defaults(schema: dict[str, Any]) -> Any:
    props = schema.get("properties")
    if schema.get("type") == "object" and isinstance(props, dict):
        return {k: v["default"] for k, v in props.items() if isinstance(v, dict) and "default" in v}
    return schema.get("default")
