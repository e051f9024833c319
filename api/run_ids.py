"""Run ids in URLs, child runs included.

Child runs have ids with slashes (`<parent>/<step>[/<branch>]`), which `{run_id}` cannot
match. `{run_id:child_run_id}` takes such ids; it refuses an id whose last segment is a
sub-resource name, so `/v1/runs/{run_id}/<word>` routes are never shadowed by it. Every
per-run route is registered for both forms (`child_route`), so what works on a run
works on its children (read its events, approve its approval step, steer its agent).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from starlette.convertors import Convertor, register_url_convertor

SUB_RESOURCES = ("result", "cancel", "retry", "messages", "events", "stream", "approvals",
                 "approve", "tree", "children", "rating", "ratings", "comments",
                 "budget", "rerun")  # fmt: skip


class ChildRunId(Convertor[str]):
    regex = rf"[^/]+(?:/[^/]+)*/(?!(?:{'|'.join(SUB_RESOURCES)})$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("child_run_id", ChildRunId())


def child_route(router: APIRouter, path: str, endpoint: Callable[..., Any], **kw: Any) -> None:
    """Also serve `path` (which has `{run_id}`) for child run ids, hidden from the schema."""
    router.add_api_route(
        path.replace("{run_id}", "{run_id:child_run_id}"),
        endpoint,
        include_in_schema=False,
        **kw,
    )
