"""The Workflow Streams internals the gateway relies on are still what it expects.

`api/streams.py` reads a run's retained events with the stream's poll *query*, which
the experimental `temporalio.contrib.workflow_streams` registers under a private name
and answers with its wire types. That is why `temporalio` is pinned exactly
(pyproject.toml and constraints.txt): when an upgrade changes any of it, this test
fails and names what changed, before a gateway silently serves nothing.
"""

from __future__ import annotations

import dataclasses
import re
from importlib.metadata import version
from pathlib import Path

from temporalio.contrib.workflow_streams import PollInput, PollResult, _stream, _types

from api import streams

ROOT = Path(__file__).resolve().parents[2]
PINNED = "1.35.0"


def test_temporalio_is_pinned_exactly_everywhere() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    constraints = (ROOT / "constraints.txt").read_text()
    assert re.search(rf'"temporalio=={re.escape(PINNED)}"', pyproject), "pyproject.toml pin"
    assert f"temporalio=={PINNED}\n" in constraints, "constraints.txt pin"
    assert version("temporalio") == PINNED, (
        f"temporalio {version('temporalio')} is installed, the code was checked against "
        f"{PINNED}: re-check api/streams.py against workflow_streams, then move the pin"
    )


def test_poll_query_name_is_the_streams_own() -> None:
    assert streams.POLL == _stream._POLL, (
        "workflow_streams renamed its poll handler: api/streams.py must follow"
    )


def test_poll_wire_types_are_unchanged() -> None:
    def fields(cls: type) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    assert {"topics", "from_offset"} <= fields(PollInput)
    assert {"items", "more_ready"} <= fields(PollResult)
    # items are base64 of a serialized Payload plus their offset: what api/streams.py decodes
    assert {"data", "offset"} <= fields(_types._WorkflowStreamWireItem)
