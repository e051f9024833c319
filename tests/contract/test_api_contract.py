"""The API keeps its contract: schemathesis throws generated requests (valid and
invalid) at every operation of the real gateway (uvicorn, SQLite, the dev server, a
worker) and checks each answer: no 5xx, every status declared in the OpenAPI document,
every body valid against the declared schema and content type.

Bounded and deterministic: a fixed number of cases per operation and mode, derandomized,
no shrinking; failures are collected and reported together.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.stack import Stack

CHECKS: list[Any] = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]
CASES_PER_OPERATION = 4  # per generation mode: ~45 operations x 2 modes x 4: ~300 cases


def load_operations(doc: dict[str, Any]) -> list[Any]:
    """The document's operations. Loaded on the caller's thread: schemathesis imports
    modules lazily, and compiling them on a worker thread tripped a CPython 3.11 bug."""
    schema = schemathesis.openapi.from_dict(doc)
    return [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]


def run_contract(
    operations: list[Any], url: str, cases: int = CASES_PER_OPERATION
) -> tuple[int, list[str]]:
    """Run every operation's cases; return (cases sent, failures as readable lines)."""
    sent = 0
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    session = requests.Session()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=cases,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def check(case: Any) -> None:
                nonlocal sent
                sent += 1
                # follow=false and a short wait keep streaming and long-poll routes short
                response = case.call(base_url=url, session=session, timeout=60)
                statuses[response.status_code] += 1
                try:
                    case.validate_response(response, checks=CHECKS)
                except (Exception, BaseExceptionGroup) as e:  # FailureGroup: failed checks
                    text = str(e).strip().splitlines()
                    named = [line.strip("- ") for line in text if line.startswith("- ")]
                    first = "; ".join(named) or (text[0] if text else type(e).__name__)
                    failures.append(
                        f"{case.operation.label} -> {response.status_code}: {first}"
                        f" [{case.as_curl_command()[:300]}]"
                    )

            try:
                check()
            except Unsatisfiable:  # e.g. no invalid request exists for `GET /healthz`
                continue
    print(f"contract: {sent} cases, statuses {dict(sorted(statuses.items()))}")
    print(
        f"contract: {len(failures)} failures, {sum(statuses[c] for c in statuses if c >= 500)} 5xx"
    )
    for line in failures:
        print("contract failure:", line)
    return sent, failures


async def test_no_5xx_and_every_answer_matches_the_schema(stack: Stack) -> None:
    # a definition and a run, so some generated ids hit real resources
    await stack.put_definition(
        {"id": "greet", "steps": [{"id": "say", "action": "llm_call", "prompt": "hi"}]}
    )
    await stack.start("greet")
    operations = load_operations((await stack.http.get("/openapi.json")).json())
    sent, failures = await asyncio.to_thread(run_contract, operations, stack.url)
    assert sent >= 200, sent
    assert not failures, f"{len(failures)} of {sent} cases broke the contract:\n" + "\n".join(
        failures[:40]
    )
