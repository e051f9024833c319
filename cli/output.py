"""The CLI's consoles: text is never wrapped, so messages stay whole.

Rich wraps printed text at the terminal width (80 columns when output is not a
terminal), which splits an error message naming a long path across lines: a user
grepping or piping the output would miss it. Tables still fit the width.
"""

from __future__ import annotations

from rich.console import Console


def console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, soft_wrap=True)
