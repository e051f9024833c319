"""`duratask --help` stays fast: start-up imports none of the heavy libraries.

Timing asserts would depend on the machine, so this checks the cause instead: the
modules that made start-up slow (settings, HTTP client, YAML, cron, Temporal, Typer's
rich help) are imported only when a command that needs them runs.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = [
    "duratask.settings",
    "pydantic_settings",
    "httpx",
    "yaml",
    "croniter",
    "cron_descriptor",
    "temporalio",
    "typer.rich_utils",
    "rich.markdown",
]


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_importing_the_cli_loads_no_heavy_module() -> None:
    loaded = _loaded_after("import cli.main")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_help_loads_no_heavy_module() -> None:
    code = (
        "import contextlib, io\nfrom cli.main import app\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    app(['--help'])"
    )
    loaded = _loaded_after(code)
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
